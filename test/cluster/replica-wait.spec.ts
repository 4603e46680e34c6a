import { randomUUID } from 'node:crypto';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import IORedis, { type Cluster } from 'ioredis';
import { IdempotencyModule, RedisIdempotencyStore } from 'nestjs-idempotency';
import { ReplicasNotReachedError } from '../../libs/idempotency/src/storage/redis/replica-wait';
import { RedisCluster } from '../support/redis-cluster';
import { uniquePrefix } from '../support/redis';

/**
 * waitForReplicas on a Redis Cluster: WAIT goes down the connection of the write it waits for, also when
 * the write's slot is moving (ASK) or has moved (MOVED); a write the replica did not acknowledge fails.
 * A hash tag in the prefix puts all of a test's records in one slot, so the test knows which master has them.
 */
describe('waitForReplicas on a Redis Cluster', () => {
  let cluster: RedisCluster;
  let client: Cluster;
  const direct: IORedis[] = [];
  /** A connection to one node, outside the cluster client. */
  const own = (port: number) => {
    direct.push(new IORedis(port, '127.0.0.1'));
    return direct[direct.length - 1];
  };
  const wait = { count: 1, timeout: '1s' };

  beforeAll(async () => {
    cluster = await RedisCluster.start();
    client = await cluster.readyClient();
  }, 60_000);
  afterAll(async () => {
    await client?.quit();
    direct.forEach((connection) => connection.disconnect());
    await cluster?.stop();
  }, 60_000);

  /** A prefix whose records all fall in one slot, and the master that serves it. */
  async function slotOfOwn() {
    const prefix = `{${uniquePrefix('wait')}}:`;
    const slot = Number(await client.cluster('KEYSLOT', prefix));
    const masters = await cluster.masters();
    const owner = masters.find((master) => master.slots.some(([low, high]) => slot >= low && slot <= high))!;
    return { prefix, slot, owner, other: masters.find((master) => master !== owner)! };
  }

  const claim = (store: RedisIdempotencyStore, key = randomUUID()) => store.claim({ scope: 'wait', key, fingerprint: null, leaseMs: 60_000, ttlMs: 60_000 });

  it('follows ASK while the slot migrates and MOVED once it moved, and waits on the node that made the write', async () => {
    const { prefix, slot, owner, other } = await slotOfOwn();
    const store = new RedisIdempotencyStore(client, { prefix, waitForReplicas: wait });
    const first = await claim(store);
    expect(first.status).toBe('claimed');

    // Half moved: the source answers ASK for a key it does not have.
    await cluster.command(other.node.port, ['CLUSTER', 'SETSLOT', String(slot), 'IMPORTING', owner.id]);
    await cluster.command(owner.node.port, ['CLUSTER', 'SETSLOT', String(slot), 'MIGRATING', other.id]);
    const asked = await claim(store);
    expect(asked.status).toBe('claimed');
    const keyOf = (key: string) => `${prefix}wait:${key}`;
    const askedKey = asked.status === 'claimed' ? asked.ref.key : '';
    // The importing node serves a key of the slot only after ASKING.
    const [, [, exists]] = (await own(other.node.port).pipeline().asking().exists(keyOf(askedKey)).exec()) ?? [];
    expect(exists).toBe(1);

    // Moved: the first record goes along, and the client's slot map is now stale (MOVED).
    const firstKey = first.status === 'claimed' ? first.ref.key : '';
    await cluster.command(owner.node.port, ['MIGRATE', '127.0.0.1', String(other.node.proxy.port), '', '0', '5000', 'KEYS', keyOf(firstKey)]);
    for (const master of await cluster.masters()) await cluster.command(master.node.port, ['CLUSTER', 'SETSLOT', String(slot), 'NODE', other.id]);
    expect((await claim(store)).status).toBe('claimed');
    expect(first.status === 'claimed' && (await store.complete(first.ref, { status: 200, headers: [], body: Buffer.from('ok') }, 60_000))).toBe(true);
    expect((await store.find('wait', firstKey))?.state).toBe('completed');
    expect(await own(other.node.port).exists(keyOf(firstKey))).toBe(1);
  });

  it('gives back a claim, and fails a completion, that no replica acknowledged in time', async () => {
    const { prefix, owner } = await slotOfOwn();
    // The claim to complete later is made while the replica is linked, with the suite's second to spare: on a busy
    // machine a replica may take more than the 300 ms below to acknowledge even a healthy write.
    await cluster.waitForReplicaLinks();
    const linked = new RedisIdempotencyStore(client, { prefix, waitForReplicas: wait });
    const held = await claim(linked);
    if (held.status !== 'claimed') throw new Error(`expected a claim, got ${held.status}`);
    const store = new RedisIdempotencyStore(client, { prefix, waitForReplicas: { count: 1, timeout: 300 } });
    // The replica's link to its master goes silent (it reconnects and catches up after).
    owner.node.proxy.stall();
    try {
      const key = randomUUID();
      await expect(claim(store, key)).rejects.toBeInstanceOf(ReplicasNotReachedError);
      expect(await store.find('wait', key)).toBeUndefined();
      await expect(store.complete(held.ref, { status: 200, headers: [], body: Buffer.from('ok') }, 60_000)).rejects.toThrow(
        'The Redis write reached 0 of 1 replicas within 300 ms (waitForReplicas).',
      );
      // The primary has it: a replay on it answers, and only a failover now could lose it.
      expect((await store.find('wait', held.ref.key))?.state).toBe('completed');
    } finally {
      await owner.node.proxy.stop();
      await owner.node.proxy.start();
    }
    await cluster.waitForReplicaLinks();
    expect((await claim(linked)).status).toBe('claimed');
  });

  it('stops the app at start when the option is wrong, on a connection of its own or on a Cluster client', async () => {
    for (const connection of [`redis://127.0.0.1:${cluster.nodes[0].port}`, client]) {
      @Module({
        imports: [IdempotencyModule.forRoot({ purgeInterval: 0, store: { type: 'redis', connection, waitForReplicas: { count: 0, timeout: '1s' } } })],
      })
      class WrongWaitModule {}
      await expect(NestFactory.createApplicationContext(WrongWaitModule, { logger: false, abortOnError: false })).rejects.toThrow(
        /waitForReplicas\.count: 0 is not a number of replicas/,
      );
    }
  });
});
