import type { Duration } from './duration';
import type { IdempotencyRequest } from './idempotency-request';
import type { KeySource } from './keys/key-source';
import type { EventOrder, FingerprintFunction, InFlightPolicy, ScopeFunction } from './route-functions';
import type { VerifyWebhookOptions } from './webhooks/verify-webhook.options';
import type { WebhookProvider } from './webhooks/webhook-verifiers';
import type { OutboxOptions, RedisConnectionOptions } from './outbox/outbox.options';
import type { IdempotencyStore } from './storage/idempotency-store';
import type { RedisClient, WaitForReplicas } from './storage/redis/redis-idempotency.store';
import type { IdempotencyMetricsOptions } from './observability/idempotency-metrics';
import type { EncryptionOptions } from './storage/encryption/response-encryption';
import type { PartitioningOptions } from './storage/postgres/partitioning.options';

export type { EventOrder, EventVersion, FingerprintFunction, InFlightPolicy, ScopeFunction } from './route-functions';

/**
 * Options of one idempotent route. Given to `IdempotencyModule.forRoot()` they are the defaults;
 * given to `@Idempotent()` they override those for the route.
 *
 * @example
 * \@Idempotent({ key: 'payload-hash', ttl: '1h', onInFlight: 'wait', waitTimeout: '5s' })
 */
export interface IdempotentOptions<TRequest = IdempotencyRequest> {
  /** Where the key comes from. Default `'header'` (`Idempotency-Key`). */
  key?: KeySource<TRequest>;
  /** Adds a tenant or principal to the scope (the route); keys never cross scopes. */
  scope?: ScopeFunction<TRequest>;
  /** Whether a request without a key is refused (400). Default `true`; `false` runs it without idempotency. */
  required?: boolean;
  /** Whether a repeat must match the first request: `true` (default), `false`, or your own hash. */
  fingerprint?: boolean | FingerprintFunction<TRequest>;
  /** How long a completed record is replayed. Default `'24h'`; provider presets: at least the provider's retry window. */
  ttl?: Duration;
  /** How long a claim holds before another request may take it over. Default `'30s'`; at least `'1s'`. */
  lease?: Duration;
  /** The lease is renewed while the handler runs, up to this long after the claim. Default `'10m'`; at least `lease`. */
  maxLease?: Duration;
  /** `'reject'` (default): 409 at once; `'wait'`: wait for the first request's answer. */
  onInFlight?: InFlightPolicy;
  /** The longest a duplicate waits (`'wait'`, and transaction mode) before its 409. Default `'10s'`. */
  waitTimeout?: Duration;
  /** Run the handler inside the claim's transaction (see `@IdempotentTransaction()`). Default `false`. */
  transaction?: boolean;
  /** Which statuses are stored and replayed. Default: below 500, except 408, 409, 425 and 429. */
  storeIf?: (status: number) => boolean;
  /** Headers replayed besides `content-type`, `location`, `etag` and `last-modified`. */
  replayHeaders?: string[];
  /** The largest body stored, in bytes. Default 1 MiB; a larger one fails the request loudly. */
  maxResponseBytes?: number;
  /**
   * Skips events older than the newest one applied to the same resource: they get a 2xx with
   * `Idempotent-Skipped: stale-event` and the handler does not run. Needs `transaction: true`, so that
   * the version check, the handler's writes and the new version commit together.
   *
   * @example
   * order: { resource: (req) => req.body.data.object.id, version: (req) => req.body.created }
   */
  order?: EventOrder<TRequest>;
}

/**
 * Options of `IdempotencyModule.forRoot()`: the route defaults, and how the module runs.
 * (`dataSource`, the name of a TypeORM DataSource other than the default, sits beside them.)
 *
 * @example
 * IdempotencyModule.forRoot({ ttl: '24h', lease: '60s', purgeInterval: '15m', dataSource: 'records' })
 */
export interface IdempotencyModuleOptions extends Omit<IdempotentOptions, 'order'> {
  /**
   * Where records are kept. Default: the app's TypeORM DataSource, in the store for its `type` (`'postgres'`, or
   * `'mysql'` / `'mariadb'`); `'postgres'` or `'mysql'` insists on one. Or Redis, or a store of your own.
   * Transaction mode, event ordering and `runJob()` need a SQL store; the outbox needs PostgreSQL.
   */
  store?: 'postgres' | 'mysql' | RedisStoreOptions | IdempotencyStore;
  /** How often expired records are purged. Default `'1h'`; `0` turns the timer off. */
  purgeInterval?: Duration;
  /** Rows deleted per purge statement. Default 1000. */
  purgeBatchSize?: number;
  /**
   * Sends the store's statements as named prepared statements, which PostgreSQL plans once per connection
   * (the claim's statement costs more to plan than to run). Default `true` where TypeORM runs on node-postgres.
   * Set `false` behind PgBouncer in transaction pooling, unless it is 1.21 or newer with
   * `max_prepared_statements` above 0.
   */
  preparedStatements?: boolean;
  /**
   * Completed answers kept in each process once a key has been replayed, so that its further duplicates
   * are answered without a round trip to the database. Completed records do not change until they expire;
   * `maxAge` (default `'1m'`) bounds how long a record deleted by hand is still replayed here. `maxBytes`
   * defaults to 8 MiB per process. `false` turns it off.
   */
  replayCache?: { maxAge?: Duration; maxBytes?: number } | false;
  /** How `@VerifyWebhook()` verifies each provider (secrets, tolerance, url), unless the decorator says otherwise. */
  webhooks?: { [Provider in WebhookProvider]?: VerifyWebhookOptions };
  /** The transactional outbox to BullMQ (`JobOutbox`), and whether this process relays it. */
  outbox?: OutboxOptions;
  /**
   * Prometheus metrics through `prom-client` (an optional peer): `idempotency_outcomes_total{outcome,route}`
   * and `idempotency_added_seconds{outcome,route}`, in prom-client's global `register` unless `registry` says.
   * Default off.
   */
  metrics?: boolean | IdempotencyMetricsOptions;
  /**
   * Encrypts stored response bodies and headers with AES-256-GCM. The first key encrypts, every key
   * decrypts: add a new key first, and remove an old one once its records have expired (`ttl`).
   *
   * @example
   * encryption: { keys: [{ id: '2025-06', key: process.env.IDEMPOTENCY_KEY_2025_06! }] } // openssl rand -base64 32
   */
  encryption?: EncryptionOptions;
  /**
   * The PostgreSQL store on a table partitioned by time (`PartitionedTypeOrmIdempotencyStore`), whose partitions
   * are dropped whole once all their records expired, instead of deleted row by row. Needs the migration
   * `CreatePartitionedIdempotencyRecords1763900000010`. For many millions of records a day.
   */
  partitioning?: PartitioningOptions;
  /**
   * Whether handlers can read their claim (`IdempotencyContext`, `@IdempotencyKey()`). `'auto'` (default): where
   * the app injects `IdempotencyContext` or uses `@IdempotencyKey()`, found at start. `'always'`: also for apps that
   * read it only through `IdempotencyContext`'s static methods. Carrying it costs every request some CPU on Node 20
   * (an AsyncLocalStorage keeps a promise hook on for the whole process), so it is off where nothing reads it.
   */
  claimContext?: 'auto' | 'always';
}

/**
 * Records in Redis (`RedisIdempotencyStore`), through ioredis (an optional peer: `npm install ioredis`).
 *
 * @example
 * IdempotencyModule.forRoot({ store: { type: 'redis', connection: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' } })
 */
export interface RedisStoreOptions {
  type: 'redis';
  /**
   * A `redis://` or `rediss://` URL or ioredis options, for a connection the module opens and closes; or a
   * client of your own (a `Cluster` too), which it leaves open.
   */
  connection: string | RedisConnectionOptions | RedisClient;
  /** Prepended to every key. Default `'idempotency:'`. */
  prefix?: string;
  /**
   * `WAIT count timeout` after each claim and completion, so a failover loses none that a client was told
   * about (see `docs/redis-cluster.md`). Default: off.
   */
  waitForReplicas?: WaitForReplicas;
}

/** The route options after defaults, in milliseconds: the route's plan, built at start. */

const NOT_STORED_4XX = new Set([408, 409, 425, 429]);

/** The default `storeIf`: 2xx, 3xx and 4xx are final answers, except the ones that invite a retry. */
export const storeFinalAnswers = (status: number): boolean => status < 500 && !NOT_STORED_4XX.has(status);

export const IDEMPOTENCY_DEFAULTS = {
  key: 'header',
  required: true,
  fingerprint: true,
  ttl: '24h',
  lease: '30s',
  maxLease: '10m',
  onInFlight: 'reject',
  waitTimeout: '10s',
  transaction: false,
  storeIf: storeFinalAnswers,
  maxResponseBytes: 1024 * 1024,
  purgeInterval: '1h',
  purgeBatchSize: 1000,
} as const satisfies IdempotencyModuleOptions;
