import type { Redis } from 'ioredis';
import type { IdempotencyRecordView } from '../storage/idempotency-store';
import { loadIoRedis } from '../storage/redis/ioredis';
import { REDIS_FIELDS, redisRecordKey } from '../storage/redis/redis-record-key';
import { CliFailure } from './cli-errors';
import { describeError, redactUrl } from './format';
import type { FoundRecords, RecordSource, RecordStats, ScopeCounts, StuckClaim } from './record-source';

/** Keys asked of SCAN per call. */
const SCAN_COUNT = 1000;

/**
 * The records of the Redis store, read in its layout (`storage/redis/redis-record-key.ts`): one hash per record,
 * times in milliseconds since the epoch on Redis' clock. A key in every scope, and the counts, are found by
 * scanning the prefix.
 */
export class RedisRecords implements RecordSource {
  readonly description: string;

  private constructor(
    private readonly client: Redis,
    url: string,
    private readonly prefix: string,
  ) {
    this.description = `Redis at ${redactUrl(url)} (prefix ${prefix})`;
  }

  /** Connects, or fails with what to check. */
  static async open(url: string, prefix: string): Promise<RedisRecords> {
    const IoRedis = await loadIoRedis('nestjs-idempotency --redis');
    const client = new IoRedis(url, {
      lazyConnect: true,
      connectTimeout: 5000,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
      connectionName: 'nestjs-idempotency-cli',
    });
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
    return new RedisRecords(client, url, prefix);
  }

  async find(key: string, options: { scope?: string; limit: number }): Promise<FoundRecords> {
    const now = await this.now();
    const keys =
      options.scope !== undefined
        ? [redisRecordKey(this.prefix, options.scope, key)]
        : await this.scan(`${globEscape(this.prefix)}*:${globEscape(encodeURIComponent(key))}`);
    const hashes = await this.pipelined(keys, (pipeline, redisKey) => pipeline.hgetallBuffer(redisKey));
    const records: IdempotencyRecordView[] = [];
    keys.forEach((redisKey, index) => {
      const id = parseRecordKey(this.prefix, redisKey);
      const hash = hashes[index] as Record<string, Buffer> | undefined;
      const record = id && id.key === key && hash ? toView(id, hash) : undefined;
      if (record && record.expiresAt > now) records.push(record);
    });
    records.sort((a, b) => a.createdAt.getTime() - b.createdAt.getTime() || a.scope.localeCompare(b.scope));
    return { now, records: records.slice(0, options.limit), truncated: records.length > options.limit };
  }

  async stats(options: { topScopes: number; topStuck: number }): Promise<RecordStats> {
    const now = await this.now();
    const states = { inFlight: 0, stuck: 0, completed: 0, expired: 0 };
    const scopes = new Map<string, ScopeCounts>();
    const stuck: StuckClaim[] = [];
    const fields = [REDIS_FIELDS.state, REDIS_FIELDS.leaseExpiresAt, REDIS_FIELDS.expiresAt, REDIS_FIELDS.createdAt, REDIS_FIELDS.attempts];
    for await (const batch of this.client.scanStream({ match: `${globEscape(this.prefix)}*`, count: SCAN_COUNT }) as AsyncIterable<string[]>) {
      const values = await this.pipelined(batch, (pipeline, redisKey) => pipeline.hmget(redisKey, ...fields));
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

  private async scan(match: string): Promise<string[]> {
    const keys = new Set<string>(); // SCAN may return a key twice
    for await (const batch of this.client.scanStream({ match, count: SCAN_COUNT }) as AsyncIterable<string[]>) {
      for (const key of batch) keys.add(key);
    }
    return [...keys];
  }

  /**
   * One command per key in one round trip. A key of the prefix that holds no hash is not a record of the
   * store: its answer is `undefined`; any other error fails the command.
   */
  private async pipelined(keys: string[], command: (pipeline: ReturnType<Redis['pipeline']>, key: string) => unknown): Promise<unknown[]> {
    if (keys.length === 0) return [];
    const pipeline = this.client.pipeline();
    for (const key of keys) command(pipeline, key);
    const replies = (await pipeline.exec()) ?? [];
    return replies.map(([error, value]) => {
      if (error && !error.message.startsWith('WRONGTYPE')) throw error;
      return error ? undefined : value;
    });
  }
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
