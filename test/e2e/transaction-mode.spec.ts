import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { DATABASE_URL } from '../support/database';
import { createTestDatabase, describeEachDatabase, onRoute, type TestDatabase } from '../support/engines';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';

describeEachDatabase('transaction mode', (route) =>
  describe.each(PLATFORMS)('on %s', (platform) => {
    let database: TestDatabase;
    let t: TestApp;
    // The route takes a PostgreSQL advisory lock; on MariaDB the handler's lock waits are bounded in whole seconds,
    // which test/integration/mysql-store.spec.ts holds.
    const onPostgres = route.engine === 'postgres' ? it : it.skip;

    beforeAll(async () => {
      database = await createTestDatabase(route.engine, `tx_${platform}`);
      t = await startApp(platform, onRoute(route, database));
    });
    afterAll(async () => {
      await t?.close();
      await database?.drop();
    });

    it('commits the business writes with the stored response, and replays it', async () => {
      const key = randomUUID();
      const first = await send(t.url, '/t/tx', { key, body: { label: key } });
      const second = await send(t.url, '/t/tx', { key, body: { label: key } });
      expect(first.status).toBe(201);
      expect(second.text).toBe(first.text);
      expect(second.headers.get('idempotent-replayed')).toBe('true');
      expect(await t.effects(key)).toBe(1);
    });

    onPostgres("bounds each of the handler's own lock waits by the full waitTimeout, not what the claim left of it", async () => {
      const key = randomUUID();
      const holder = new Client({ connectionString: DATABASE_URL });
      await holder.connect();
      try {
        // The handler's lock is held elsewhere for 2.5 s; waitTimeout is 2 s.
        await holder.query('SELECT pg_advisory_lock(4242)');
        const release = sleep(2500).then(() => holder.query('SELECT pg_advisory_unlock(4242)'));
        // The first attempt fails after 1 s; its duplicate waited for it, then claims with about 1 s of waitTimeout left.
        const [failed, retried] = await Promise.all([
          send(t.url, '/t/tx-lock', { key, body: { label: key, ms: 1000 }, headers: { 'x-fail': '1' } }),
          sleep(50).then(() => send(t.url, '/t/tx-lock', { key, body: { label: key } })),
        ]);
        await release;
        expect(failed.status).toBe(500);
        expect(retried.status).toBe(201);
        expect(await t.effects(key)).toBe(1);
      } finally {
        await holder.end();
      }
    });

    it('rolls back the business writes and the claim when the handler fails', async () => {
      const key = randomUUID();
      expect((await send(t.url, '/t/tx', { key, body: { label: key, fail: true } })).status).toBe(500);
      expect(await t.effects(key)).toBe(0);
      expect(await t.service.find(key, { scope: 'POST /t/tx' })).toBeUndefined();
      // The retry runs again, and this time commits.
      expect((await send(t.url, '/t/tx', { key, body: { label: key, fail: true } })).status).toBe(500);
      expect(await t.effects(key)).toBe(0);
    });

    it('answers 503 and commits nothing when the commit fails after the handler wrote', async () => {
      const key = randomUUID();
      const request = send(t.url, '/t/tx', { key, body: { label: key, msAfter: 600 } });
      // While the handler sleeps inside its transaction, the database ends that session.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(await database.killIdleWriters()).toBe(1);
      const answer = await request;
      expect(answer.status).toBe(503);
      expect(answer.json()).toMatchObject({ code: 'IDEMPOTENCY_STORE_UNAVAILABLE' });
      expect(answer.headers.get('retry-after')).toBeTruthy();
      expect(await t.effects(key)).toBe(0);
      // The client's retry runs the handler once and commits.
      expect((await send(t.url, '/t/tx', { key, body: { label: key, msAfter: 600 } })).status).toBe(201);
      expect(await t.effects(key)).toBe(1);
    });

    it('ends a transaction left idle past maxLease by a stuck handler, freeing the key and the connection', async () => {
      const key = randomUUID();
      const stuck = await send(t.url, '/t/tx-stuck', { key, body: { label: key, msAfter: 2500 } });
      expect(stuck.status).toBe(503);
      expect(await t.effects(key)).toBe(0);
      // Nothing of the stuck attempt remains: the retry runs once, on a connection the pool got back.
      expect((await send(t.url, '/t/tx-stuck', { key, body: { label: key } })).status).toBe(201);
      expect(await t.effects(key)).toBe(1);
    });

    it('lets a retry through on the same instance once a stuck handler passed maxLease', async () => {
      const key = randomUUID();
      const stuck = send(t.url, '/t/tx-stuck', { key, body: { label: key, msAfter: 3000 } });
      await new Promise((resolve) => setTimeout(resolve, 1500));
      // The stuck attempt was rolled back: nothing binds the key to its body any more.
      const retry = await send(t.url, '/t/tx-stuck', { key, body: { label: key } });
      expect(retry.status).toBe(201);
      expect((await stuck).status).toBe(503);
      expect(await t.effects(key)).toBe(1);
    });

    it('answers 422 to a duplicate with another body that waited for the first to commit', async () => {
      const key = randomUUID();
      const first = send(t.url, '/t/tx', { key, body: { label: key, msAfter: 400 } });
      await new Promise((resolve) => setTimeout(resolve, 100));
      const other = await send(t.url, '/t/tx', { key, body: { label: `${key}-other`, msAfter: 400 } });
      expect(other.status).toBe(422);
      expect((await first).status).toBe(201);
      expect(await t.effects(`${key}-other`)).toBe(0);
    });

    it('gives a keyless request on a route with required: false the plain manager', async () => {
      const label = randomUUID();
      expect((await send(t.url, '/t/tx-optional', { body: { label } })).status).toBe(201);
      expect(await t.effects(label)).toBe(1);
    });
  }),
);
