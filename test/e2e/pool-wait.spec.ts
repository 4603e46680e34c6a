import { randomUUID } from 'node:crypto';
import { createSchema, dropSchema, sql } from '../support/database';
import { startApp, type TestApp } from '../support/harness';
import { burst, countBy, send } from '../support/http';

/**
 * Transaction mode holds a pooled connection per running handler: a claim queues for one no longer than its
 * waitTimeout. Outside a transaction the claim is bounded the same way (at least a second): the pool here has no
 * connectionTimeoutMillis, so without the bound it would wait for as long as the connection is held.
 */
describe('a claim waiting for a pooled connection', () => {
  let schema: string;
  let t: TestApp;

  beforeAll(async () => {
    schema = await createSchema('pool_wait');
    t = await startApp('express', { schema, poolSize: 1 });
  });
  afterAll(async () => {
    await t?.close();
    await dropSchema(schema);
  });

  it('gets a 503 with Retry-After once its waitTimeout has passed, and the key stays free', async () => {
    const holder = randomUUID();
    // Holds the only connection for 1.5 s.
    const holding = send(t.url, '/t/tx', { key: holder, body: { label: holder, msAfter: 1500 } });
    await new Promise((resolve) => setTimeout(resolve, 200));

    const key = randomUUID();
    const startedAt = Date.now();
    const refused = await send(t.url, '/t/tx-short', { key, body: { label: key } });
    const waited = Date.now() - startedAt;
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused.json()).toMatchObject({ code: 'IDEMPOTENCY_STORE_UNAVAILABLE' });
    expect(waited).toBeGreaterThanOrEqual(250);
    expect(waited).toBeLessThan(1200);

    expect((await holding).status).toBe(201);
    // The connection that came too late went back to the pool, and the key runs once it is retried.
    expect((await send(t.url, '/t/tx-short', { key, body: { label: key } })).status).toBe(201);
    expect(await t.effects(key)).toBe(1);
    expect((await send(t.url, '/t/tx', { key: randomUUID(), body: { label: 'after' } })).status).toBe(201);
  });

  it('outside a transaction, gets a 503 after waitTimeout (at least 1 s), and the claim left in the queue never takes the key', async () => {
    const holder = randomUUID();
    // Holds the only connection for 2.5 s.
    const holding = send(t.url, '/t/tx', { key: holder, body: { label: holder, msAfter: 2500 } });
    await new Promise((resolve) => setTimeout(resolve, 200));

    const key = randomUUID();
    const startedAt = Date.now();
    const refused = await send(t.url, '/t/wait-short', { key, body: { label: key } });
    const waited = Date.now() - startedAt;
    expect(refused.status).toBe(503);
    expect(refused.json()).toMatchObject({ code: 'IDEMPOTENCY_STORE_UNAVAILABLE' });
    expect(waited).toBeGreaterThanOrEqual(950);
    expect(waited).toBeLessThan(2200);

    expect((await holding).status).toBe(201);
    // The claim left queued for the connection did not start when the holder was done: the retry runs.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const retried = await send(t.url, '/t/wait-short', { key, body: { label: key } });
    expect(retried.status).toBe(201);
    expect(retried.headers.get('idempotent-replayed')).toBeNull();
    expect(await t.effects(key)).toBe(1);
  });

  it('under overload, 20 concurrent claims queued past their waitTimeout all get 503, and none of them takes its key', async () => {
    const holder = randomUUID();
    const holding = send(t.url, '/t/tx', { key: holder, body: { label: holder, msAfter: 2500 } });
    await new Promise((resolve) => setTimeout(resolve, 200));

    const keys = Array.from({ length: 20 }, () => randomUUID());
    const refused = await burst(keys.length, (index) => send(t.url, '/t/wait-short', { key: keys[index], body: { label: keys[index] } }));
    expect(countBy(refused, (reply) => reply.status)).toEqual({ 503: 20 });
    expect((await holding).status).toBe(201);

    // The queued claims got the connection one after another once the holder was done, and none started.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await sql(`SELECT key FROM "${schema}".idempotency_records WHERE key = ANY($1)`, [keys])).toEqual([]);
    // One after another: on one connection, twenty at once could queue past the bound again.
    for (const key of keys) expect((await send(t.url, '/t/wait-short', { key, body: { label: key } })).status).toBe(201);
    for (const key of keys) expect(await t.effects(key)).toBe(1);
  });
});
