import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { createTestDatabase, describeEachDatabase, onRoute, type TestDatabase } from '../support/engines';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { burst, countBy, send } from '../support/http';

const DUPLICATES = 100;

describeEachDatabase(`${DUPLICATES} simultaneous duplicates`, (route) =>
  describe.each(PLATFORMS)('on %s', (platform) => {
    let database: TestDatabase;
    let t: TestApp;

    beforeAll(async () => {
      database = await createTestDatabase(route.engine, `burst_${platform}`);
      t = await startApp(platform, { ...onRoute(route, database), poolSize: 10 });
    });
    afterAll(async () => {
      await t?.close();
      await database?.drop();
    });

    it("run the handler once in lease mode with onInFlight: 'reject'; the rest get 409 or the replay", async () => {
      const key = randomUUID();
      const replies = await burst(DUPLICATES, () => send(t.url, '/t/basic', { key, body: { label: key, ms: 200 } }));
      const statuses = countBy(replies, (reply) => reply.status);
      expect(await t.effects(key)).toBe(1);
      expect(Object.keys(statuses).sort()).toEqual(expect.arrayContaining(['201']));
      expect((statuses[201] ?? 0) + (statuses[409] ?? 0)).toBe(DUPLICATES);
      expect(statuses[409]).toBeGreaterThan(0);
      const fresh = replies.filter((reply) => reply.status === 201 && reply.headers.get('idempotent-replayed') === null);
      expect(fresh).toHaveLength(1);
    });

    it("run the handler once with onInFlight: 'wait', and every duplicate gets the first answer", async () => {
      const key = randomUUID();
      const replies = await burst(DUPLICATES, () => send(t.url, '/t/wait', { key, body: { label: key, ms: 200 } }));
      expect(await t.effects(key)).toBe(1);
      expect(new Set(replies.map((reply) => `${reply.status} ${reply.text}`)).size).toBe(1);
      expect(replies.filter((reply) => reply.headers.get('idempotent-replayed') === 'true')).toHaveLength(DUPLICATES - 1);
    });

    it('run the handler once in transaction mode, and every duplicate gets the first answer', async () => {
      const key = randomUUID();
      const replies = await burst(DUPLICATES, () => send(t.url, '/t/tx', { key, body: { label: key, ms: 200 } }));
      expect(await t.effects(key)).toBe(1);
      expect(new Set(replies.map((reply) => `${reply.status} ${reply.text}`)).size).toBe(1);
    });

    it('in transaction mode, leave the pool to other requests while duplicates wait', async () => {
      const key = randomUUID();
      const finished: string[] = [];
      const duplicates = burst(50, () =>
        send(t.url, '/t/tx', { key, body: { label: key, msAfter: 1500 } }).then((reply) => {
          finished.push('duplicate');
          return reply;
        }),
      );
      await sleep(300);
      // With duplicates parked on the row lock, each would hold one of the 10 pooled connections.
      const others = await burst(5, () => send(t.url, '/t/basic', { key: randomUUID(), body: { label: `other-${key}` } }));
      finished.push('others');
      await duplicates;
      expect(others.map((reply) => reply.status)).toEqual([201, 201, 201, 201, 201]);
      expect(finished[0]).toBe('others');
      expect(await t.effects(key)).toBe(1);
    });

    it('in transaction mode, answer 409 to duplicates that wait past waitTimeout, with no deadlock', async () => {
      const key = randomUUID();
      const replies = await burst(30, () => send(t.url, '/t/tx-short', { key, body: { label: key, msAfter: 1000 } }));
      const statuses = countBy(replies, (reply) => reply.status);
      expect(statuses).toEqual({ 201: 1, 409: 29 });
      expect(replies.find((reply) => reply.status === 409)?.headers.get('retry-after')).toBeTruthy();
      expect(await t.effects(key)).toBe(1);
    });

    it('keep keys apart under load: 20 keys with 10 duplicates each run 20 handlers', async () => {
      const keys = Array.from({ length: 20 }, () => randomUUID());
      await burst(200, (index) => send(t.url, '/t/wait', { key: keys[index % 20], body: { label: `many-${keys[index % 20]}`, ms: 50 } }));
      const counts = await Promise.all(keys.map((key) => t.effects(`many-${key}`)));
      expect(counts).toEqual(keys.map(() => 1));
    });
  }),
);
