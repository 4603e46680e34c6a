import type { ChainableCommander, Cluster, Redis } from 'ioredis';
import type { IdempotencyRecordView } from '../storage/idempotency-store';
import { loadIoRedis, loadIoRedisCluster } from '../storage/redis/ioredis';
import { REDIS_FIELDS, redisRecordKey } from '../storage/redis/redis-record-key';
import { CliFailure } from './cli-errors';
import { describeError, redactUrl } from './format';
import type { FoundRecords, RecordSource, RecordStats, ScopeCounts, StuckClaim } from './record-source';

/** Keys asked of SCAN per call. */
const SCAN_COUNT = 1000;

const CONNECTION = { connectTimeout: 5000, maxRetriesPerRequest: 0, connectionName: 'nestjs-idempotency-cli' };

/**
 * The records of the Redis store, read in its layout (`storage/redis/redis-record-key.ts`): one hash per record,
 * times in milliseconds since the epoch on Redis' clock. A key in every scope, and the counts, are found by
 * scanning the prefix. On a Redis Cluster (the URL names any one node) every master is scanned, and each key
 * read from the master that listed it.
 */
export class RedisRecords implements RecordSource {
  readonly description: string;

  private constructor(
    private readonly client: Redis | Cluster,
    url: string,
    private readonly prefix: string,
  ) {
    this.description = `Redis ${isCluster(client) ? 'Cluster at' : 'at'} ${redactUrl(url)} (prefix ${prefix})`;
  }

  /** Connects, or fails with what to check. */
  static async open(url: string, prefix: string): Promise<RedisRecords> {
    const client = await connect(url);
    if (!/^cluster_enabled:1\b/m.test(await client.info('cluster'))) return new RedisRecords(client, url, prefix);
    // A node of a cluster holds only its own slots' records: the whole cluster is read through a Cluster client.
    client.disconnect();
    const { username, password, protocol } = new URL(url);
    const redisOptions = {
      ...CONNECTION,
      username: decodeURIComponent(username) || undefined,
      password: decodeURIComponent(password) || undefined,
      tls: protocol === 'rediss:' ? {} : undefined,
    };
    const IoRedisCluster = await loadIoRedisCluster('nestjs-idempotency --redis');
    const cluster = new IoRedisCluster([url], { lazyConnect: true, clusterRetryStrategy: () => null, redisOptions });
    try {
      await cluster.connect();
    } catch (error) {
      cluster.disconnect();
      throw new CliFailure(`Cannot read the Redis Cluster of ${redactUrl(url)} (${describeError(error)}). Check that every node is reachable from here.`, {
        cause: error,
      });
    }
    return new RedisRecords(cluster, url, prefix);
  }

  async find(key: string, options: { scope?: string; limit: number }): Promise<FoundRecords> {
    const now = await this.now();
    const groups =
      options.scope !== undefined
        ? [{ node: this.client, keys: [redisRecordKey(this.prefix, options.scope, key)] }]
        : await this.scan(`${globEscape(this.prefix)}*:${globEscape(encodeURIComponent(key))}`);
    const records: IdempotencyRecordView[] = [];
    for (const { node, keys } of groups) {
      const hashes = await pipelined(node, keys, (pipeline, redisKey) => pipeline.hgetallBuffer(redisKey));
      keys.forEach((redisKey, index) => {
        const id = parseRecordKey(this.prefix, redisKey);
        const hash = hashes[index] as Record<string, Buffer> | undefined;
        const record = id && id.key === key && hash ? toView(id, hash) : undefined;
        if (record && record.expiresAt > now) records.push(record);
      });
    }
    records.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.scope.localeCompare(b.scope));
    return { now, records: records.slice(0, options.limit), truncated: records.length > options.limit };
  }

  async stats(options: { topScopes: number; topStuck: number }): Promise<RecordStats> {
    const now = await this.now();
    const states = { inFlight: 0, stuck: 0, completed: 0, expired: 0 };
    const scopes = new Map<string, ScopeCounts>();
    const stuck: StuckClaim[] = [];
    const fields = [REDIS_FIELDS.state, REDIS_FIELDS.leaseExpiresAt, REDIS_FIELDS.expiresAt, REDIS_FIELDS.createdAt, REDIS_FIELDS.attempts];
    for (const node of this.masters()) {
      for await (const batch of node.scanStream({ match: `${globEscape(this.prefix)}*`, count: SCAN_COUNT }) as AsyncIterable<string[]>) {
        const values = await pipelined(node, batch, (pipeline, redisKey) => pipeline.hmget(redisKey, ...fields));
        batch.forEach((redisKey, index) => {
          const id = parseRecordKey(this.prefix, redisKey);
          const [state, lease, expires, created, attempts] = (values[index] ?? []) as Array<string | null>;
          if (!id || (state !== 'in_flight' && state !== 'completed') || expires === null) return;
          if (Number(expires) <= now.getTime()) {
            states.expired += 1;
            return;
          }
          const counts = scopes.get(id.scope) ?? { scope: id.scope, live: 0, inFlight: 0, stuck: 0, completed: 0 };
          scopes.set(id.scope, counts);
          counts.live += 1;
          if (state === 'completed') {
            states.completed += 1;
            counts.completed += 1;
          } else if (lease !== null && Number(lease) > now.getTime()) {
            states.inFlight += 1;
            counts.inFlight += 1;
          } else {
            states.stuck += 1;
            counts.stuck += 1;
            stuck.push({
              ...id,
              attempts: Number(attempts ?? 1),
              createdAt: new Date(Number(created)),
              leaseExpiredAt: lease === null ? null : new Date(Number(lease)),
            });
          }
        });
      }
    }
    const byCount = [...scopes.values()].sort((a, b) => b.live - a.live || a.scope.localeCompare(b.scope));
    stuck.sort((a, b) => (a.leaseExpiredAt?.getTime() ?? 0) - (b.leaseExpiredAt?.getTime() ?? 0));
    return { now, states, scopes: byCount.slice(0, options.topScopes), scopeCount: scopes.size, oldestStuck: stuck.slice(0, options.topStuck) };
  }

  /** Redis deletes each record when its key's TTL runs out: there is nothing to purge. */
  purge(): Promise<undefined> {
    return Promise.resolve(undefined);
  }

  async close(): Promise<void> {
    await this.client.quit();
  }

  /** Redis' clock, which the store's times are on. */
  private async now(): Promise<Date> {
    const [seconds, microseconds] = await this.client.time();
    return new Date(Number(seconds) * 1000 + Math.floor(Number(microseconds) / 1000));
  }

  /** The nodes whose SCAN lists every record once: the masters of a cluster, or the one server. */
  private masters(): Redis[] {
    return isCluster(this.client) ? this.client.nodes('master') : [this.client];
  }

  /** The keys that match, with the node that listed them (on a cluster, the master of their slot). */
  private async scan(match: string): Promise<Array<{ node: Redis; keys: string[] }>> {
    return Promise.all(
      this.masters().map(async (node) => {
        const keys = new Set<string>(); // SCAN may return a key twice
        for await (const batch of node.scanStream({ match, count: SCAN_COUNT }) as AsyncIterable<string[]>) {
          for (const key of batch) keys.add(key);
        }
        return { node, keys: [...keys] };
      }),
    );
  }
}

/** Connects to the one node the URL names, or fails with what to check. */
async function connect(url: string): Promise<Redis> {
  const IoRedis = await loadIoRedis('nestjs-idempotency --redis');
  const client = new IoRedis(url, { lazyConnect: true, retryStrategy: () => null, ...CONNECTION });
  // A connection error also rejects the command that needed the connection, with a vaguer message
  // ("Connection is closed"): the socket's own error is kept to say what happened.
  let socketError: unknown;
  client.on('error', (error: unknown) => (socketError = error));
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    client.disconnect();
    throw new CliFailure(
      `Cannot connect to Redis at ${redactUrl(url)} (${describeError(socketError ?? error)}). Check --redis and that the server is running.`,
      { cause: error },
    );
  }
  return client;
}

function isCluster(client: Redis | Cluster): client is Cluster {
  return typeof (client as Partial<Cluster>).refreshSlotsCache === 'function';
}

/**
 * One command per key in one round trip, on the node given (on a cluster, keys of one master's listing). A key
 * of the prefix that holds no hash is not a record of the store: its answer is `undefined`; any other error
 * fails the command.
 */
async function pipelined(node: Redis | Cluster, keys: string[], command: (pipeline: ChainableCommander, key: string) => unknown): Promise<unknown[]> {
  if (keys.length === 0) return [];
  const pipeline = node.pipeline();
  for (const key of keys) command(pipeline, key);
  const replies = (await pipeline.exec()) ?? [];
  return replies.map(([error, value]) => {
    if (error && !error.message.startsWith('WRONGTYPE')) throw error;
    return error ? undefined : value;
  });
}

/** A SCAN pattern that matches `text` literally. */
export function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

/**
 * Scope and key of a record's Redis key, or `undefined` for a key of the prefix that is not a record.
 * Both are URI-encoded, so the one `:` after the prefix separates them.
 */
export function parseRecordKey(prefix: string, redisKey: string): { scope: string; key: string } | undefined {
  if (!redisKey.startsWith(prefix)) return undefined;
  const parts = redisKey.slice(prefix.length).split(':');
  if (parts.length !== 2) return undefined;
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch (error) {
      // Not URI-encoded: some other key under the same prefix, not a record.
      if (error instanceof URIError) return undefined;
      throw error;
    }
  };
  const [scope, key] = parts.map(decode);
  return scope === undefined || key === undefined ? undefined : { scope, key };
}

/** A record's hash as `find()` shows it; `undefined` for a hash that does not hold a record. */
export function toView(id: { scope: string; key: string }, hash: Record<string, Buffer>): IdempotencyRecordView | undefined {
  const text = (field: string) => hash[field]?.toString('utf8') ?? null;
  const time = (field: string) => {
    const value = text(field);
    return value === null ? null : new Date(Number(value));
  };
  const state = text(REDIS_FIELDS.state);
  const expiresAt = time(REDIS_FIELDS.expiresAt);
  if ((state !== 'in_flight' && state !== 'completed') || !expiresAt) return undefined;
  const headers = text(REDIS_FIELDS.headers);
  return {
    ...id,
    state,
    fingerprint: text(REDIS_FIELDS.fingerprint),
    attempts: Number(text(REDIS_FIELDS.attempts) ?? 1),
    owner: text(REDIS_FIELDS.owner),
    createdAt: time(REDIS_FIELDS.createdAt) ?? expiresAt,
    completedAt: time(REDIS_FIELDS.completedAt),
    leaseExpiresAt: time(REDIS_FIELDS.leaseExpiresAt),
    expiresAt,
    response:
      state === 'completed'
        ? {
            status: Number(text(REDIS_FIELDS.status) ?? 200),
            headers: headers ? (JSON.parse(headers) as Array<[string, string]>) : [],
            body: hash[REDIS_FIELDS.body] ?? Buffer.alloc(0),
          }
        : null,
  };
}
