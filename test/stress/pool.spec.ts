import { randomUUID } from 'node:crypto';
import { type ChildApp, startChildApp } from '../support/child-app';
import { createSchema, dropSchema } from '../support/database';
import { countBy, send } from '../support/http';
import { createEffectsTable, effectsPerKey, notOnce, report } from './load';

/**
 * A small pool under a crowd: 300 concurrent requests over 50 keys against 5 connections. Transaction
 * mode holds a connection for each claim while its handler runs, and waits in-process for duplicates; wait
 * mode polls. Neither may deadlock, and every request is answered within waitTimeout plus a second.
 */
describe('a pool of 5 connections and 300 concurrent requests', () => {
  const WAIT_TIMEOUT = 3000;
  let schema: string;
  let app: ChildApp;

  beforeAll(async () => {
    schema = await createSchema('stress_pool');
    await createEffectsTable(schema);
    app = await startChildApp('stress-app', {
      SCHEMA: schema,
      POOL: '5',
      WAIT_TIMEOUT: String(WAIT_TIMEOUT),
      HANDLER_MS: '20',
      QUIET: '1',
    });
  });
  afterAll(async () => {
    await app?.kill();
    await dropSchema(schema);
  });

  it.each(['tx', 'wait'])('/%s: no deadlock, every request answered in time, one effect per key', async (mode) => {
    const keys = Array.from({ length: 50 }, () => randomUUID());
    const answers = await Promise.all(
      Array.from({ length: 300 }, async (_, index) => {
        const key = keys[index % keys.length];
        const startedAt = Date.now();
        const reply = await send(app.url, `/${mode}`, { key, body: { key } });
        return { status: reply.status, ms: Date.now() - startedAt };
      }),
    );

    const slowest = Math.max(...answers.map((answer) => answer.ms));
    report(
      `/${mode}, pool of 5, 300 concurrent over 50 keys: slowest answer ${slowest} ms (waitTimeout ${WAIT_TIMEOUT} ms), ${JSON.stringify(countBy(answers, (answer) => answer.status))}`,
    );
    expect(slowest).toBeLessThan(WAIT_TIMEOUT + 1000);
    // Each key's first request ran its handler; its duplicates got its answer, or a 409 if the wait ran out
    // (or a 503, had a claim waited for a pooled connection past its waitTimeout).
    const statuses = countBy(answers, (answer) => answer.status);
    expect(Object.keys(statuses).filter((status) => !['201', '409', '503'].includes(status))).toEqual([]);
    expect(statuses[201]).toBeGreaterThanOrEqual(keys.length);
    expect(notOnce(keys, await effectsPerKey(schema, mode))).toEqual({});
  });
});
