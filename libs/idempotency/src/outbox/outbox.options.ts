import { type Duration, toMilliseconds, toTimerMilliseconds } from '../duration';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';

/** How to reach the Redis of the BullMQ queues, as ioredis takes it (`host`, `port`, `password`, `db`, `tls`...). */
export interface RedisConnectionOptions {
  url?: string;
  host?: string;
  port?: number;
  username?: string;
  password?: string;
  db?: number;
  tls?: Record<string, unknown>;
  [option: string]: unknown;
}

/**
 * The transactional outbox: `JobOutbox.enqueue()` writes jobs in the claim's transaction, and a relay
 * moves committed ones to BullMQ.
 *
 * @example
 * IdempotencyModule.forRoot({ outbox: { connection: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' } })
 */
export interface OutboxOptions {
  /** The Redis of the queues: a `redis://` or `rediss://` URL, or ioredis options. */
  connection: string | RedisConnectionOptions;
  /** Whether this process runs a relay. Default `true`; several relays share the work. */
  relay?: boolean;
  /** How often a relay looks for rows written by other processes. Default `'500ms'`; its own are sent at once. */
  pollInterval?: Duration;
  /** Rows sent per batch (one `addBulk` per queue). Default 100. */
  batchSize?: number;
  /** How long a sent row is kept before it is deleted, processed or not. Default `'24h'`. */
  retention?: Duration;
  /**
   * Sends a row again when no `IdempotencyService.runJob()` consumer has marked it processed this long
   * after it was sent (a job lost with a Redis that keeps nothing on disk). Off by default: turn it on
   * only when every consumer of the outbox's queues uses `runJob()`.
   */
  redeliverAfter?: Duration;
  /** With `redeliverAfter`: how many times a row is sent at most, the first send included. Default 5. */
  maxSends?: number;
  /** The longest a send to Redis may take before the batch is given up and retried. Default `'5s'`. */
  sendTimeout?: Duration;
  /** BullMQ's key prefix. Default BullMQ's (`bull`). */
  prefix?: string;
}

export interface ResolvedOutboxOptions {
  connection: RedisConnectionOptions;
  relay: boolean;
  pollIntervalMs: number;
  batchSize: number;
  retentionMs: number;
  redeliverAfterMs: number | null;
  maxSends: number;
  sendTimeoutMs: number;
  prefix?: string;
}

export function resolveOutboxOptions(options: OutboxOptions): ResolvedOutboxOptions {
  const where = 'IdempotencyModule outbox';
  const batchSize = options.batchSize ?? 100;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new IdempotencyConfigurationError(`${where}: batchSize must be a positive whole number.`);
  const maxSends = options.maxSends ?? 5;
  if (!Number.isInteger(maxSends) || maxSends < 1) throw new IdempotencyConfigurationError(`${where}: maxSends must be a positive whole number.`);
  const sendTimeoutMs = toTimerMilliseconds(options.sendTimeout ?? '5s', `${where}: sendTimeout`);
  const redeliverAfterMs = options.redeliverAfter === undefined ? null : toMilliseconds(options.redeliverAfter, `${where}: redeliverAfter`);
  if (redeliverAfterMs !== null && redeliverAfterMs <= sendTimeoutMs) {
    throw new IdempotencyConfigurationError(
      `${where}: redeliverAfter must be longer than sendTimeout (${sendTimeoutMs} ms), or a row would be re-sent while its send may still land.`,
    );
  }
  return {
    connection: typeof options.connection === 'string' ? fromUrl(options.connection, where) : options.connection,
    relay: options.relay ?? true,
    pollIntervalMs: Math.max(10, toTimerMilliseconds(options.pollInterval ?? '500ms', `${where}: pollInterval`)),
    batchSize,
    retentionMs: toMilliseconds(options.retention ?? '24h', `${where}: retention`),
    redeliverAfterMs,
    maxSends,
    sendTimeoutMs,
    prefix: options.prefix,
  };
}

function fromUrl(value: string, where: string): RedisConnectionOptions {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new IdempotencyConfigurationError(`${where}: connection ${JSON.stringify(value)} is not a redis:// URL.`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new IdempotencyConfigurationError(`${where}: connection must be a redis:// or rediss:// URL, not ${url.protocol}.`);
  }
  // BullMQ hands a `url` to ioredis as it is.
  return { url: value };
}
