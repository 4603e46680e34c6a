import type { Cluster } from 'ioredis';
import { redisRecordKey } from '../../libs/idempotency/src/storage/redis/redis-record-key';
import { type ChildApp, startChildApp } from '../support/child-app';
import { createSchema, dropSchema } from '../support/database';
import { countBy } from '../support/http';
import { uniquePrefix } from '../support/redis';
import { RedisCluster } from '../support/redis-cluster';
import { type Attempt, createEffectsTable, deliver, duplicates, effectsPerKey, inParallel, notOnce, report } from '../stress/load';

/**
 * Two app instances (processes of their own) on one Redis Cluster, racing on the same keys while slots move
 * from one master to another under them: the records of keys in those slots move with MIGRATE, so requests
 * meet `ASK` (a slot half moved) and `MOVED` (a slot map gone stale). Each handler run writes one row in
 * PostgreSQL, so runs are counted there.
 */
describe('two instances on a Redis Cluster, with slots resharded under load', () => {
  const SCOPE = 'POST /wait';
  const prefix = `${uniquePrefix('cluster_instances')}:`;
  let cluster: RedisCluster;
  let client: Cluster;
  let schema: string;
  const apps: ChildApp[] = [];
  const urls = () => apps.map((app) => app.url);

  beforeAll(async () => {
    cluster = await RedisCluster.start();
    client = await cluster.readyClient();
    schema = await createSchema('cluster_instances');
    await createEffectsTable(schema);
    const env = { SCHEMA: schema, HANDLER_MS: '20', QUIET: '1', STORE: 'redis', REDIS_CLUSTER: JSON.stringify(cluster.addresses()), KEY_PREFIX: prefix };
    // The first runs the migrations of the effects' DataSource; two at once would race.
    apps.push(await startChildApp('stress-app', env));
    apps.push(await startChildApp('stress-app', env));
  }, 60_000);
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill()));
    await client?.quit();
    await cluster?.stop();
    if (schema) await dropSchema(schema);
  }, 60_000);

  it('runs each key once and answers every duplicate with the first answer, while 600 slots move', async () => {
    const [from, to] = await cluster.masters();
    const keys: string[] = [];
    const answers: Array<{ key: string; status: number; text: string }> = [];
    const attempts: Attempt[] = [];
    let resharding = true;
    const reshard = cluster.reshard(from.id, to.id, 600).finally(() => (resharding = false));
    // Rounds of duplicates until the reshard is over, and one more after it, against a slot map that moved.
    for (let round = 0; resharding || round < 2; round++) {
      const batch = duplicates(20, 100);
      keys.push(...batch.keys);
      await inParallel(batch.deliveries, 20, async (key) => {
        const reply = await deliver(urls, '/wait', key, attempts, Date.now() + 30_000);
        answers.push({ key, status: reply.status, text: reply.text });
      });
    }
    await reshard;

    expect(countBy(answers, (answer) => answer.status)).toEqual({ 201: answers.length });
    expect(notOnce(keys, await effectsPerKey(schema, 'wait'))).toEqual({});
    const firstAnswers = new Map<string, Set<string>>();
    for (const { key, text } of answers) firstAnswers.set(key, (firstAnswers.get(key) ?? new Set()).add(text));
    expect([...firstAnswers.values()].filter((texts) => texts.size !== 1)).toEqual([]);
    // The reshard moved records of this test: a slot of the source now served by the target holds some.
    const inRanges = (ranges: Array<[number, number]>, slot: number) => ranges.some(([low, high]) => slot >= low && slot <= high);
    const target = (await cluster.masters()).find((master) => master.id === to.id)!;
    const slots = await Promise.all(keys.map(async (key) => Number(await client.cluster('KEYSLOT', redisRecordKey(prefix, SCOPE, key)))));
    const moved = slots.filter((slot) => inRanges(from.slots, slot) && inRanges(target.slots, slot));
    report(
      `cluster, 2 instances, reshard of 600 slots: ${keys.length} keys, ${answers.length} deliveries, attempts ${JSON.stringify(countBy(attempts, (a) => a.status))}, ` +
        `${moved.length} keys in moved slots`,
    );
    expect(moved.length).toBeGreaterThan(0);
  }, 120_000);
});
