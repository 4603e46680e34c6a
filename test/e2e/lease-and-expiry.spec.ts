import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSchema, dropSchema, sql } from '../support/database';
import { startApp, type TestApp } from '../support/harness';
import { burst, countBy, send } from '../support/http';

describe('leases, fencing and expiry', () => {
  let schema: string;
  let t: TestApp;
  const rows = async (key: string) =>
    sql<{ state: string; attempts: number }>(`SELECT state, attempts FROM "${schema}".idempotency_records WHERE key = $1`, [key]);

  beforeAll(async () => {
    schema = await createSchema('lease');
    t = await startApp('express', { schema, idempotency: { purgeBatchSize: 2 } });
  });
  afterAll(async () => {
    await t?.close();
    await dropSchema(schema);
  });

  it('renews the lease of a live handler, so a slow one is not run twice', async () => {
    const key = randomUUID();
    const slow = send(t.url, '/t/renew', { key, body: { label: key, ms: 2500 } });
    await sleep(1700); // past the 1s lease: only renewal keeps the claim
    const duplicate = await send(t.url, '/t/renew', { key, body: { label: key, ms: 2500 } });
    expect(duplicate.status).toBe(409);
    expect((await slow).status).toBe(201);
    expect(await t.effects(key)).toBe(1);
  });

  it('lets a retry take over a claim whose lease ran out, and fences the late first attempt', async () => {
    const key = randomUUID();
    const first = send(t.url, '/t/lease-any', { key, body: { label: key, ms: 2500 } });
    await sleep(1300); // the first attempt stalls past its 1s lease, which is not renewed on this route
    const winner = await send(t.url, '/t/lease-any', { key, body: { label: key, ms: 100 } });
    expect(winner.status).toBe(201);
    expect(winner.headers.get('idempotent-replayed')).toBeNull();
    // The first attempt completes after the one that took over: its completion is fenced off.
    const late = await first;
    expect(late.status).toBe(201);
    expect(late.text).not.toBe(winner.text);
    const replay = await send(t.url, '/t/lease-any', { key, body: { label: key } });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.text).toBe(winner.text);
    expect(await rows(key)).toEqual([{ state: 'completed', attempts: 2 }]);
  });

  it('lets exactly one of 50 concurrent retries take over an expired lease', async () => {
    const key = randomUUID();
    const first = send(t.url, '/t/lease-any', { key, body: { label: key, ms: 2500 } });
    await sleep(1300);
    const retries = await burst(50, () => send(t.url, '/t/lease-any', { key, body: { label: key, ms: 300 } }));
    // A retry that arrives after the winner finished (the burst can take longer than its 300 ms on a busy
    // machine) gets the winner's answer replayed; every other one is refused while the winner runs.
    const outcome = (reply: (typeof retries)[number]) =>
      reply.status === 409 ? 'in flight' : reply.headers.get('idempotent-replayed') === 'true' ? 'replayed' : `ran ${reply.status}`;
    const counts = countBy(retries, outcome);
    expect(counts['ran 201']).toBe(1);
    expect((counts['in flight'] ?? 0) + (counts.replayed ?? 0)).toBe(49);
    const winner = retries.find((reply) => outcome(reply) === 'ran 201');
    for (const reply of retries.filter((r) => outcome(r) === 'replayed')) expect(reply.text).toBe(winner?.text);
    await first;
    expect(await t.effects(key)).toBe(2); // the stalled first attempt, and the one retry that took over
    expect(await rows(key)).toEqual([{ state: 'completed', attempts: 2 }]);
  });

  it('counts an expired record as absent, and purges expired records in batches', async () => {
    const key = randomUUID();
    await send(t.url, '/t/ttl', { key, body: { label: key } });
    expect((await send(t.url, '/t/ttl', { key, body: { label: key } })).headers.get('idempotent-replayed')).toBe('true');
    await sleep(1200);
    const again = await send(t.url, '/t/ttl', { key, body: { label: key } });
    expect(again.headers.get('idempotent-replayed')).toBeNull();
    expect(await t.effects(key)).toBe(2);

    const expired = Array.from({ length: 5 }, () => randomUUID());
    for (const other of expired) await send(t.url, '/t/ttl', { key: other, body: { label: other } });
    const live = randomUUID();
    await send(t.url, '/t/basic', { key: live, body: { label: live } });
    await sleep(1200);
    expect(await t.service.purgeExpired()).toBeGreaterThanOrEqual(6);
    for (const other of [key, ...expired]) expect(await rows(other)).toEqual([]);
    expect(await rows(live)).toEqual([{ state: 'completed', attempts: 1 }]);
  });

  it('finds live records, and not expired ones', async () => {
    const key = randomUUID();
    await send(t.url, '/t/ttl', { key, body: { label: key } });
    const record = await t.service.find(key, { scope: 'POST /t/ttl' });
    expect(record).toMatchObject({ state: 'completed', attempts: 1, response: { status: 201 } });
    await sleep(1100);
    expect(await t.service.find(key, { scope: 'POST /t/ttl' })).toBeUndefined();
  });
});
