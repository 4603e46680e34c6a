import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';
import { TcpProxy } from '../support/tcp-proxy';

/**
 * Replays kept in process: once a key has been replayed, its duplicates are answered without the
 * database. The app reaches PostgreSQL through a proxy, cut to show what needs the database.
 */
describe('the replay cache', () => {
  let schema: string;
  let proxy: TcpProxy;
  let cached: TestApp;
  let uncached: TestApp;

  beforeAll(async () => {
    schema = await createSchema('replay_cache');
    const target = new URL(DATABASE_URL);
    proxy = await TcpProxy.open({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(DATABASE_URL);
    viaProxy.port = String(proxy.port);
    cached = await startApp('express', { schema, databaseUrl: viaProxy.toString() });
    uncached = await startApp('express', { schema, databaseUrl: viaProxy.toString(), idempotency: { replayCache: false } });
  });
  afterAll(async () => {
    await cached?.close();
    await uncached?.close();
    await proxy?.stop();
    await dropSchema(schema);
  });
  afterEach(() => proxy.start());

  /** Completes the key, then replays it once from the database (which keeps the answer on `app`). */
  const completeAndReplay = async (app: TestApp, path: string, key: string) => {
    const first = await send(app.url, path, { key, body: { label: key } });
    const replay = await send(app.url, path, { key, body: { label: key } });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    return first;
  };

  it('answers a replayed key again without the database, byte for byte, and tells a changed body apart', async () => {
    const key = randomUUID();
    const first = await completeAndReplay(cached, '/t/basic', key);
    await proxy.stop();

    const again = await send(cached.url, '/t/basic', { key, body: { label: key } });
    expect(again.status).toBe(first.status);
    expect(again.text).toBe(first.text);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect((await send(cached.url, '/t/basic', { key, body: { label: 'changed' } })).status).toBe(422);
    // Another key needs the database, which is away.
    expect((await send(cached.url, '/t/basic', { key: randomUUID(), body: { label: 'new' } })).status).toBe(503);
    expect(await cached.effects(key)).toBe(1);
  });

  it('keeps nothing with replayCache: false', async () => {
    const key = randomUUID();
    await completeAndReplay(uncached, '/t/basic', key);
    await proxy.stop();
    expect((await send(uncached.url, '/t/basic', { key, body: { label: key } })).status).toBe(503);
  });

  it('forgets an answer when its record expires', async () => {
    const key = randomUUID();
    await completeAndReplay(cached, '/t/ttl', key);
    await sleep(1200);
    // Expired: the key is new again, and runs again.
    const after = await send(cached.url, '/t/ttl', { key, body: { label: key } });
    expect(after.status).toBe(201);
    expect(after.headers.get('idempotent-replayed')).toBeNull();
    expect(await cached.effects(key)).toBe(2);
  });

  it('keeps transaction-mode replays too, and keeps nothing for a key that was only answered once', async () => {
    const key = randomUUID();
    await completeAndReplay(cached, '/t/tx', key);
    await proxy.stop();
    expect((await send(cached.url, '/t/tx', { key, body: { label: key } })).headers.get('idempotent-replayed')).toBe('true');
    // Completed here but never replayed: filled by replays only, so a first answer costs no memory.
    const once = randomUUID();
    await proxy.start();
    expect((await send(cached.url, '/t/basic', { key: once, body: { label: once } })).status).toBe(201);
    await proxy.stop();
    expect((await send(cached.url, '/t/basic', { key: once, body: { label: once } })).status).toBe(503);
  });
});
