import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClusterOptions } from 'ioredis';
import { RedisIdempotencyStore, type WaitForReplicas } from 'nestjs-idempotency';
import { type ChildApp, startChildApp } from '../support/child-app';
import { createSchema, dropSchema } from '../support/database';
import { countBy } from '../support/http';
import { uniquePrefix } from '../support/redis';
import { RedisCluster } from '../support/redis-cluster';
import { type Attempt, createEffectsTable, deliver, duplicates, effectsPerKey, inParallel } from '../stress/load';

/** One failover under load, as `runFailover` drives it. */
export interface FailoverOptions {
  /** The Redis store's durability option, in the apps and in the probe; absent: Redis' asynchronous replication. */
  waitForReplicas?: WaitForReplicas;
  /** Delay on the link from the master that dies to its replica (both ways): replication that lags this much. */
  linkDelayMs: number;
  /** Keys, and deliveries over them, of each round; rounds go on until the failover is over, and `roundsAfter` more (default 2). */
  keys: number;
  deliveries: number;
  roundsAfter?: number;
  /** Deliveries in flight at once, across both app instances. */
  concurrency: number;
  /** When the master is killed, from the start of the load. */
  killAfterMs: number;
  /**
   * Start the killed node again once its replica took over (default true), so the new master gets a replica:
   * with `waitForReplicas`, writes to its slots are refused until then.
   */
  restartKilled?: boolean;
  /** The route's lease (default 2 s). */
  lease?: string;
  /** ioredis Cluster options of the apps, over the defaults of test/apps/stress-app.ts. */
  clientOptions?: ClusterOptions;
}

/** What a failover did, seen by clients, by the effects table and by a probe writing straight to the store. */
export interface FailoverFigures {
  /** Every answer the clients got (they retry 409, 5xx and lost connections, as webhook providers do). */
  answers: Record<string, number>;
  /** Keys by how many times their handler ran. */
  runsPerKey: Record<string, number>;
  /** Keys whose handler ran more than once. */
  doubleExecutions: number;
  /** Keys whose delivery after the failover ran the handler again instead of getting the stored answer. */
  lostAnswers: number;
  /** Writes the probe was told had succeeded, and those the new master does not have. */
  probe: { acknowledgedClaims: number; lostClaims: number; acknowledgedCompletions: number; lostCompletions: number; failedWrites: number };
  /**
   * From the SIGKILL until the replica called itself master, until every node said cluster_state:ok, until
   * the killed node, started again, was the new master's replica (if it was), and until the probe's last failed write.
   */
  takeoverMs: number;
  healthyMs: number;
  replicatedMs: number;
  lastFailedWriteMs: number;
}

const SCOPE = 'probe';

/**
 * Starts a Redis Cluster and two app instances on it, sends duplicate deliveries through both, and SIGKILLs
 * the master of the first slots while they flow; its replication link is slowed by `linkDelayMs`, so that
 * the writes of that last stretch are what an asynchronous replica lacks (a host that dies loses what was
 * still on its way). Meanwhile a probe in this process claims and completes records straight through the
 * store and remembers each write it was told succeeded; after the failover it looks for each of them.
 */
export async function runFailover(options: FailoverOptions): Promise<FailoverFigures> {
  const cluster = await RedisCluster.start({ nodeTimeoutMs: 1500 });
  const prefix = `${uniquePrefix('failover')}:`;
  const apps: ChildApp[] = [];
  const client = cluster.client({ redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 2_000 } });
  // The killed master refuses connections until it is back: the probe counts each write that fails from its rejection.
  client.on('error', () => undefined);
  let schema: string | undefined;
  try {
    schema = await createSchema('failover');
    await createEffectsTable(schema);
    const env = {
      SCHEMA: schema,
      HANDLER_MS: '20',
      QUIET: '1',
      STORE: 'redis',
      REDIS_CLUSTER: JSON.stringify({ ...cluster.addresses(), options: options.clientOptions }),
      KEY_PREFIX: prefix,
      ...(options.waitForReplicas ? { WAIT_REPLICAS: JSON.stringify(options.waitForReplicas) } : {}),
      ...(options.lease ? { LEASE: options.lease } : {}),
    };
    apps.push(await startChildApp('stress-app', env));
    apps.push(await startChildApp('stress-app', env));
    const urls = () => apps.map((app) => app.url);
    const store = new RedisIdempotencyStore(client, { prefix, waitForReplicas: options.waitForReplicas });

    const [victim] = await cluster.masters();
    const replica = victim.replica!;
    victim.node.proxy.slow(options.linkDelayMs);

    const keys: string[] = [];
    const attempts: Attempt[] = [];
    let failedOver = false;
    const load = (async () => {
      for (let after = 0; after < (options.roundsAfter ?? 2); after += failedOver ? 1 : 0) {
        const round = duplicates(options.keys, options.deliveries);
        keys.push(...round.keys);
        await inParallel(round.deliveries, options.concurrency, (key) => deliver(urls, '/lease', key, attempts, Date.now() + 90_000));
      }
    })();
    let probing = true;
    const probe = runProbe(store, () => probing);

    await sleep(options.killAfterMs);
    const killedAt = Date.now();
    await cluster.kill(victim.node);
    let takeoverMs = -1;
    while (takeoverMs < 0) {
      const role = await cluster.command(replica.port, ['ROLE']).catch(() => '');
      if (role.startsWith('master')) takeoverMs = Date.now() - killedAt;
      else if (Date.now() - killedAt > 60_000) throw new Error('The replica did not take over within 60 s');
      else await sleep(25);
    }
    await cluster.waitUntilHealthy(60_000);
    const healthyMs = Date.now() - killedAt;
    // As an operator (or a supervisor) would: the node comes back, as the new master's replica. Until then the
    // new master has no replica, and waitForReplicas refuses every write to its slots.
    if (options.restartKilled ?? true) {
      await cluster.restart(victim.node);
      await cluster.waitForReplicaLinks(60_000);
    }
    const replicatedMs = Date.now() - killedAt;
    // Writes a little past the recovery too: they land on the new master and must stay.
    await sleep(500);
    probing = false;
    failedOver = true;
    const written = await probe;
    await load;

    // Every key once more, after the failover: a key whose answer survived gets it replayed.
    const after: Attempt[] = [];
    await inParallel(keys, options.concurrency, (key) => deliver(urls, '/lease', key, after, Date.now() + 60_000));
    const finalAnswers = after.filter((attempt) => typeof attempt.status === 'number' && attempt.status < 500 && attempt.status !== 409);
    const runs = await effectsPerKey(schema, 'lease');
    return {
      answers: countBy([...attempts, ...after], (attempt) => attempt.status),
      runsPerKey: countBy(keys, (key) => runs.get(key) ?? 0),
      doubleExecutions: keys.filter((key) => (runs.get(key) ?? 0) > 1).length,
      lostAnswers: finalAnswers.filter((attempt) => !attempt.replayed).length,
      probe: await checkProbe(store, written),
      takeoverMs,
      healthyMs,
      replicatedMs,
      lastFailedWriteMs: written.lastFailureAt === undefined ? 0 : written.lastFailureAt - killedAt,
    };
  } finally {
    await Promise.all(apps.map((app) => app.kill()));
    client.disconnect();
    await cluster.stop();
    if (schema) await dropSchema(schema);
  }
}

interface ProbeWrites {
  claimed: string[];
  completed: string[];
  failed: number;
  lastFailureAt?: number;
}

/** Claims fresh keys without pause, completing every other one, in 8 loops; keeps each write acknowledged. */
async function runProbe(store: RedisIdempotencyStore, going: () => boolean): Promise<ProbeWrites> {
  const writes: ProbeWrites = { claimed: [], completed: [], failed: 0 };
  const loop = async (index: number) => {
    for (let round = 0; going(); round++) {
      const key = randomUUID();
      try {
        const outcome = await store.claim({ scope: SCOPE, key, fingerprint: null, leaseMs: 600_000, ttlMs: 600_000 });
        if (outcome.status !== 'claimed') throw new Error(`a fresh key was ${outcome.status}`);
        if ((round + index) % 2 === 0) {
          writes.claimed.push(key);
          continue;
        }
        if (await store.complete(outcome.ref, { status: 201, headers: [], body: Buffer.from(key) }, 600_000)) writes.completed.push(key);
        else throw new Error(`the completion of ${key} was fenced off`);
      } catch {
        // Redis was away, or a write did not reach the replicas: the probe was told so, and does not count it.
        writes.failed++;
        writes.lastFailureAt = Date.now();
      }
      // A steady stream rather than as fast as Redis goes: enough writes in the last moments before the kill.
      await sleep(10);
    }
  };
  await Promise.all(Array.from({ length: 8 }, (_, index) => loop(index)));
  return writes;
}

async function checkProbe(store: RedisIdempotencyStore, writes: ProbeWrites): Promise<FailoverFigures['probe']> {
  const lost = async (keys: string[], state: 'in_flight' | 'completed') => {
    let missing = 0;
    await inParallel(keys, 50, async (key) => {
      if ((await store.find(SCOPE, key))?.state !== state) missing++;
    });
    return missing;
  };
  return {
    acknowledgedClaims: writes.claimed.length,
    lostClaims: await lost(writes.claimed, 'in_flight'),
    acknowledgedCompletions: writes.completed.length,
    lostCompletions: await lost(writes.completed, 'completed'),
    failedWrites: writes.failed,
  };
}
