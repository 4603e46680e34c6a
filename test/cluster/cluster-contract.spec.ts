import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { RedisIdempotencyStore, type RedisIdempotencyStoreOptions } from 'nestjs-idempotency';
import { testIdempotencyStore } from 'nestjs-idempotency/testing';
import { redisRecordKey } from '../../libs/idempotency/src/storage/redis/redis-record-key';
import { RedisCluster } from '../support/redis-cluster';
import { uniquePrefix } from '../support/redis';

/**
 * The store contract on a Redis Cluster of the suite's own (three masters, a replica each), through ioredis'
 * Cluster client. The suite's keys are random, so its records spread over the slots of all three masters.
 */
let started: Promise<RedisCluster> | undefined;
const clients: Cluster[] = [];
const cluster = () => (started ??= RedisCluster.start());

afterAll(async () => {
  await Promise.all(clients.map((client) => client.quit()));
  await (await started)?.stop();
}, 60_000);

async function clusterStore(options: RedisIdempotencyStoreOptions = {}) {
  const client = (await cluster()).client();
  clients.push(client);
  return { store: new RedisIdempotencyStore(client, { prefix: `${uniquePrefix('contract')}:`, ...options }) };
}

testIdempotencyStore('Redis Cluster (ioredis Cluster)', () => clusterStore());
testIdempotencyStore('Redis Cluster, waitForReplicas 1', () => clusterStore({ waitForReplicas: { count: 1, timeout: '2s' } }));

describe('the records of one suite run', () => {
  it('spread over the slots of all three masters', async () => {
    const own = await cluster();
    const client = await own.readyClient();
    clients.push(client);
    const prefix = `${uniquePrefix('spread')}:`;
    const store = new RedisIdempotencyStore(client, { prefix });
    const keys = Array.from({ length: 30 }, () => randomUUID());
    for (const key of keys) await store.claim({ scope: 'POST /spread', key, fingerprint: null, leaseMs: 10_000, ttlMs: 60_000 });
    const masters = await own.masters();
    const perMaster = await Promise.all(
      masters.map(async ({ node }) => {
        const counts = await Promise.all(keys.map((key) => own.command(node.port, ['EXISTS', redisRecordKey(prefix, 'POST /spread', key)])));
        return counts.filter((count) => count.trim() === '1').length;
      }),
    );
    expect(perMaster.reduce((a, b) => a + b, 0)).toBe(keys.length);
    expect(perMaster.every((count) => count > 0)).toBe(true);
  });
});
