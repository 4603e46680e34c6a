import IORedis from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { redisRecordKey } from '../../libs/idempotency/src/storage/redis/redis-record-key';
import { type ChildApp, startChildApp } from '../support/child-app';
import { createSchema, dropSchema } from '../support/database';
import { countBy } from '../support/http';
import { REDIS_URL, uniquePrefix } from '../support/redis';
import { type Attempt, createEffectsTable, deliver, duplicates, effectsPerKey, FULL, inParallel, notOnce, report, scaled } from './load';

/**
 * The Redis store under the same load as the PostgreSQL one (instances.spec.ts): four instances as
 * separate processes share one Redis for their records (effects are still rows in PostgreSQL, to count).
 */
describe(`four instances on the Redis store${FULL ? '' : ' (scaled down; npm run test:stress for the full run)'}`, () => {
  const INSTANCES = 4;
  const KEYS = scaled(20, 100);
  const DELIVERIES = scaled(200, 1000);
  const prefix = `${uniquePrefix('stress_redis')}:`;
  let schema: string;
  let redis: IORedis;
  const apps: ChildApp[] = [];

  const start = () => startChildApp('stress-app', { SCHEMA: schema, HANDLER_MS: '20', QUIET: '1', STORE: 'redis', REDIS_URL, KEY_PREFIX: prefix });
  const alive = () => apps.filter((app) => app.process.exitCode === null && app.process.signalCode === null);
  const urls = () => alive().map((app) => app.url);

  beforeAll(async () => {
    schema = await createSchema('stress_redis');
    await createEffectsTable(schema);
    redis = new IORedis(REDIS_URL);
    // The first runs the migrations (of the effects' DataSource); instances that all run them at once race.
    apps.push(await start());
    apps.push(...(await Promise.all(Array.from({ length: INSTANCES - 1 }, start))));
  });
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill()));
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    await dropSchema(schema);
  });

  it(`/wait: ${DELIVERIES} deliveries over ${KEYS} keys give exactly ${KEYS} effects`, async () => {
    const { keys, deliveries } = duplicates(KEYS, DELIVERIES);
    const attempts: Attempt[] = [];
    const answers: number[] = [];
    const startedAt = Date.now();
    await inParallel(deliveries, 50, async (key) => answers.push((await deliver(urls, '/wait', key, attempts, Date.now() + 60_000)).status));
    report(`/wait on Redis, ${INSTANCES} instances: ${DELIVERIES} deliveries over ${KEYS} keys in ${Date.now() - startedAt} ms, ${attempts.length} attempts`);

    expect(countBy(answers, (status) => status)).toEqual({ 201: DELIVERIES });
    const effects = await effectsPerKey(schema, 'wait');
    expect(notOnce(keys, effects)).toEqual({});
    expect(effects.size).toBe(KEYS);
  });

  it('lease mode with instances killed at random: every key ends completed, and no answer is a 5xx other than 503', async () => {
    const { keys, deliveries } = duplicates(KEYS, DELIVERIES);
    const attempts: Attempt[] = [];
    let loading = true;
    let kills = 0;
    const starting: Array<Promise<void>> = [];
    const chaos = (async () => {
      for (let pause = 20; loading; pause = 50 + Math.random() * 250) {
        await sleep(pause);
        const live = alive();
        if (!loading || live.length < 2) continue;
        await live[Math.floor(Math.random() * live.length)].kill();
        kills++;
        starting.push(start().then((app) => void apps.push(app)));
      }
      await Promise.all(starting);
    })();
    await inParallel(deliveries, 40, (key) => deliver(urls, '/lease', key, attempts, Date.now() + 60_000)).finally(() => (loading = false));
    await chaos;

    expect(kills).toBeGreaterThan(0);
    const states = await Promise.all(keys.map((key) => redis.hget(redisRecordKey(prefix, 'POST /lease', key), 'state')));
    expect(countBy(states, (state) => String(state))).toEqual({ completed: KEYS });
    const effects = await effectsPerKey(schema, 'lease');
    // Lease mode promises at most one run at a time: a run cut off by a crash may be followed by another.
    expect(keys.filter((key) => !effects.get(key))).toEqual([]);
    expect(attempts.filter((attempt) => typeof attempt.status === 'number' && attempt.status >= 500 && attempt.status !== 503)).toEqual([]);
    report(`/lease on Redis with SIGKILLs: ${kills} instances killed, runs per key ${JSON.stringify(countBy(keys, (key) => effects.get(key) ?? 0))}`);
  });
});
