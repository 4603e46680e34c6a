import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ChildApp, startChildApp } from '../support/child-app';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/engines';
import { send } from '../support/http';
import { MARIADB_URL } from '../support/mariadb';

/** Apps killed with SIGKILL in the middle of a handler: the key is neither lost nor run twice. */
describe.each(ENGINES)('a crash in the middle of a handler, %s store', (engine) => {
  let database: TestDatabase;
  const children: ChildApp[] = [];
  const start = async (hang: boolean) => {
    const child = await startChildApp('crash-app', { ENGINE: engine, MARIADB_URL, SCHEMA: database.name, HANG: hang ? '1' : '0' });
    children.push(child);
    return child;
  };
  const effects = (label: string) => database.effects(label);
  const until = async (condition: () => Promise<boolean>, timeoutMs = 10_000) => {
    for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(50)) if (await condition()) return;
    throw new Error('timed out waiting for the condition');
  };

  beforeAll(async () => {
    database = await createTestDatabase(engine, 'crash');
    await database.createEffectsTable();
  });
  afterAll(async () => {
    await Promise.all(children.map((child) => child.kill()));
    await database?.drop();
  });

  it('lease mode: after the lease, a retry on another instance runs once and completes', async () => {
    const key = randomUUID();
    const body = { label: key };
    const crashing = await start(true);
    const survivor = await start(false);

    const lost = send(crashing.url, '/work', { key, body }).then(
      () => 'answered',
      () => 'connection lost',
    );
    await until(async () => (await effects(`started:${key}`)) === 1);
    await crashing.kill();
    expect(await lost).toBe('connection lost');

    // The dead claim's lease is still running: the retry is told to come back later.
    const early = await send(survivor.url, '/work', { key, body });
    expect(early.status).toBe(409);
    expect(Number(early.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    let retry = early;
    await until(async () => (retry = await send(survivor.url, '/work', { key, body })).status !== 409);
    expect(retry.status).toBe(201);
    expect(retry.json()).toMatchObject({ pid: survivor.process.pid });
    const replay = await send(survivor.url, '/work', { key, body });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.text).toBe(retry.text);

    // The crashed attempt started once; the retry started and completed once; nothing else ran.
    expect(await effects(`started:${key}`)).toBe(2);
    expect(await effects(`completed:${key}`)).toBe(1);
    expect(await database.record(key)).toEqual({ state: 'completed', attempts: 2 });
  });

  it('transaction mode: the crashed attempt leaves nothing, and the retry runs once', async () => {
    const key = randomUUID();
    const body = { label: key };
    const crashing = await start(true);
    const survivor = await start(false);

    const lost = send(crashing.url, '/work-tx', { key, body }).then(
      () => 'answered',
      () => 'connection lost',
    );
    // The handler's uncommitted write holds the row: wait until its session sits idle in the transaction.
    await until(async () => (await database.idleWriters()) > 0);
    await crashing.kill();
    expect(await lost).toBe('connection lost');

    let retry = await send(survivor.url, '/work-tx', { key, body });
    await until(async () => retry.status === 201 || (retry = await send(survivor.url, '/work-tx', { key, body })).status === 201);
    expect(await effects(`tx:${key}`)).toBe(1);
    expect((await send(survivor.url, '/work-tx', { key, body })).headers.get('idempotent-replayed')).toBe('true');
    expect(await effects(`tx:${key}`)).toBe(1);
  });
});
