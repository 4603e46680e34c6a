import type { ChainableCommander, Cluster, Redis } from 'ioredis';
import { type Duration, toTimerMilliseconds } from '../../duration';
import { IdempotencyConfigurationError } from '../../errors/configuration.errors';
import type { RedisClient } from './redis-client';
import { type ScriptName, scriptCommand } from './redis-scripts';

/**
 * `WAIT numreplicas timeout` after the store's writes: a write counts as done only once `count` replicas
 * acknowledged it, or fails when they did not within `timeout`.
 *
 * @example
 * new RedisIdempotencyStore(cluster, { waitForReplicas: { count: 1, timeout: '500ms' } })
 */
export interface WaitForReplicas {
  /** Replicas that must hold a write before it counts: a whole number, at least 1. */
  count: number;
  /** How long to wait for them; a write they did not acknowledge by then fails. */
  timeout: Duration;
}

/** {@link WaitForReplicas}, checked. */
export interface ReplicaWait {
  count: number;
  timeoutMs: number;
}

/** A write the primary made, but fewer replicas than asked acknowledged in time: a failover now could lose it. */
export class ReplicasNotReachedError extends Error {
  constructor(
    readonly acknowledged: number,
    wait: ReplicaWait,
  ) {
    super(`The Redis write reached ${acknowledged} of ${wait.count} replicas within ${wait.timeoutMs} ms (waitForReplicas).`);
    this.name = 'ReplicasNotReachedError';
  }
}

/** Checks the option once, at start, with a message that says the fix. */
export function toReplicaWait(option: WaitForReplicas | undefined): ReplicaWait | undefined {
  if (option === undefined) return undefined;
  const count: unknown = (option as Partial<WaitForReplicas> | null)?.count;
  if (typeof count !== 'number' || !Number.isInteger(count) || count < 1) {
    throw new IdempotencyConfigurationError(
      `Redis store waitForReplicas.count: ${JSON.stringify(count) ?? String(count)} is not a number of replicas. Give a whole number, at least 1 ` +
        '(at most the replicas each primary has), or leave waitForReplicas out.',
    );
  }
  // WAIT with timeout 0 blocks for ever: refused like any zero duration.
  return { count, timeoutMs: toTimerMilliseconds(option.timeout, 'Redis store waitForReplicas.timeout') };
}

/** A cluster answers a write sent to the wrong node with where to send it. */
const REDIRECTION = /^(MOVED|ASK) \d+ (\S+)$/;
const MAX_REDIRECTIONS = 16;

type Pipelined = Record<string, (...args: unknown[]) => ChainableCommander>;

/**
 * Runs one of the store's scripts and `WAIT` in one pipeline, so both go down the same connection: WAIT
 * counts the replicas that hold this connection's writes, so on another connection it would prove nothing.
 * On a cluster the pipeline goes to the node of the record's slot. ioredis does not follow a `MOVED` or
 * `ASK` inside a pipeline whose other command succeeded, so this does: the script did not run on a node that
 * redirected it, and is sent (with `ASKING` for an `ASK`) to the node named.
 * Returns the script's reply and the number of replicas that acknowledged.
 */
export async function runAndWait(
  store: RedisClient,
  name: ScriptName,
  key: string,
  args: Array<string | number | Buffer>,
  wait: ReplicaWait,
): Promise<{ reply: unknown; replicas: number }> {
  // The store is given an ioredis client; its public type names only what compiles without ioredis installed.
  const client = store as unknown as Redis | Cluster;
  const { command, lua } = scriptCommand(name);
  let node: Redis | undefined;
  let asking = false;
  for (let hop = 0; hop < MAX_REDIRECTIONS; hop++) {
    const pipeline = (node ?? client).pipeline();
    if (asking) pipeline.asking();
    // On the cluster client the script is the command defined on it (EVALSHA, loaded on a miss); on one node
    // reached by a redirection, where it is not defined, EVAL.
    if (node) pipeline.callBuffer('EVAL', [lua, 1, key, ...args]);
    else (pipeline as unknown as Pipelined)[`${command}Buffer`](key, ...args);
    pipeline.wait(wait.count, wait.timeoutMs);
    const results = (await pipeline.exec()) ?? [];
    const [[scriptError, reply], [waitError, replicas]] = results.slice(asking ? 1 : 0);
    if (scriptError) {
      const redirection = REDIRECTION.exec(scriptError.message);
      if (!redirection || !isCluster(client)) throw scriptError;
      asking = redirection[1] === 'ASK';
      // A MOVED means the slot map changed: ioredis learns it for the next requests; this one goes on now.
      if (!asking) client.refreshSlotsCache();
      node = nodeAt(client, redirection[2]);
      continue;
    }
    if (waitError) throw waitError;
    return { reply, replicas: Number(replicas) };
  }
  // The key is left out: logs name a record by its hash, never by its key.
  throw new Error(`The Redis Cluster redirected a write more than ${MAX_REDIRECTIONS} times.`);
}

function isCluster(client: Redis | Cluster): client is Cluster {
  return typeof (client as Partial<Cluster>).refreshSlotsCache === 'function';
}

/** The connected node at an address the cluster announced, through the client's `natMap` if it has one. */
function nodeAt(cluster: Cluster, announced: string): Redis {
  const natMap = cluster.options.natMap;
  const mapped = typeof natMap === 'function' ? natMap(announced) : natMap?.[announced];
  const address = mapped ? `${mapped.host}:${mapped.port}` : announced;
  const node = cluster.nodes().find((candidate) => `${candidate.options.host}:${candidate.options.port}` === address);
  if (!node) throw new Error(`The Redis Cluster redirected a write to ${announced}, a node this client is not connected to (yet): retry.`);
  return node;
}
