import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { DataSourceLike } from './typeorm-like';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import type { IdempotencyModuleOptions } from '../idempotency.options';
import type { RedisConnectionOptions } from '../outbox/outbox.options';
import { missingDataSource } from './app-data-source';
import type { IdempotencyStore } from './idempotency-store';
import { loadIoRedis } from './redis/ioredis';
import type { RedisClient } from './redis/redis-client';
import { RedisIdempotencyStore } from './redis/redis-idempotency.store';
import { toReplicaWait } from './redis/replica-wait';
import { PartitionedTypeOrmIdempotencyStore } from './postgres/partitioned-typeorm-idempotency.store';
import { TypeOrmIdempotencyStore } from './postgres/typeorm-idempotency.store';
import { MySqlIdempotencyStore } from './mysql/mysql-idempotency.store';

/** The store the module uses, and the connection it opened for it (closed with the app). */
export class OpenedStore implements OnApplicationBootstrap, OnApplicationShutdown {
  constructor(
    readonly store: IdempotencyStore,
    private readonly ownConnection?: RedisClient,
  ) {}

  /** A store with work to do at start: the partitioned store makes its partitions ahead. */
  async onApplicationBootstrap(): Promise<void> {
    await (this.store as Partial<OnApplicationBootstrap>).onApplicationBootstrap?.();
  }

  async onApplicationShutdown(): Promise<void> {
    // quit() waits for the replies to commands already sent: a completion in flight is not cut off.
    await this.ownConnection?.quit();
  }
}

/** Builds the store that `options.store` names; on the app's DataSource, for its engine, unless it says otherwise. */
export async function openStore(options: IdempotencyModuleOptions, dataSource: DataSourceLike | undefined, missingPeer?: string): Promise<OpenedStore> {
  const choice = options.store ?? 'sql';
  if (choice === 'sql' || choice === 'postgres' || choice === 'mysql') return new OpenedStore(sqlStore(options, dataSource, choice, missingPeer));
  if (options.partitioning) {
    throw new IdempotencyConfigurationError("IdempotencyModule: partitioning applies to the PostgreSQL store only: remove it, or set store: 'postgres'.");
  }
  if (isStore(choice)) return new OpenedStore(choice);
  if (typeof choice === 'object' && choice !== null && choice.type === 'redis') {
    const { connection, prefix, waitForReplicas } = choice;
    if (isRedisClient(connection)) return new OpenedStore(new RedisIdempotencyStore(connection, { prefix, waitForReplicas }));
    // Checked before connecting: a refused option must not leave a connection open behind it.
    toReplicaWait(waitForReplicas);
    const client = await connect(connection);
    return new OpenedStore(new RedisIdempotencyStore(client, { prefix, waitForReplicas }), client);
  }
  throw new IdempotencyConfigurationError(
    `IdempotencyModule: store must be 'postgres', 'mysql', { type: 'redis', connection }, or an IdempotencyStore, not ${JSON.stringify(choice)}.`,
  );
}

const MYSQL_TYPES: readonly string[] = ['mysql', 'mariadb'];

/** The store for the engine of the app's DataSource (`options.type`): PostgreSQL, or MySQL and MariaDB. */
function sqlStore(
  options: IdempotencyModuleOptions,
  dataSource: DataSourceLike | undefined,
  choice: 'sql' | 'postgres' | 'mysql',
  missingPeer: string | undefined,
): IdempotencyStore {
  if (!dataSource) {
    throw missingDataSource(
      choice === 'mysql' ? 'The MySQL store' : 'The PostgreSQL store (the default)',
      missingPeer,
      "import TypeOrmModule.forRoot() beside IdempotencyModule, or choose another store (store: { type: 'redis', connection }).",
    );
  }
  const type = String(dataSource.options.type);
  const engine = type === 'postgres' ? 'postgres' : MYSQL_TYPES.includes(type) ? 'mysql' : undefined;
  if (!engine || (choice !== 'sql' && choice !== engine)) {
    throw new IdempotencyConfigurationError(
      `IdempotencyModule: ${choice === 'sql' ? 'the' : `store: '${choice}' does not fit the`} DataSource of type '${type}'. The library keeps ` +
        "records on a DataSource of type 'postgres', 'mysql' or 'mariadb' (leave store unset to follow it), in Redis " +
        "(store: { type: 'redis', connection }), or in a store of your own (store: yourIdempotencyStore).",
    );
  }
  if (engine === 'postgres') {
    const { preparedStatements, partitioning } = options;
    return partitioning
      ? new PartitionedTypeOrmIdempotencyStore(dataSource, { preparedStatements, ...partitioning })
      : new TypeOrmIdempotencyStore(dataSource, { preparedStatements });
  }
  if (options.partitioning) {
    throw new IdempotencyConfigurationError('IdempotencyModule: partitioning applies to the PostgreSQL store only: remove it on MySQL and MariaDB.');
  }
  if (options.outbox) {
    throw new IdempotencyConfigurationError('IdempotencyModule: the outbox needs PostgreSQL; on MySQL and MariaDB, remove the outbox option.');
  }
  return new MySqlIdempotencyStore(dataSource);
}

async function connect(connection: string | RedisConnectionOptions): Promise<RedisClient> {
  if (typeof connection === 'string' && !/^rediss?:\/\//.test(connection)) {
    throw new IdempotencyConfigurationError(`IdempotencyModule store: connection must be a redis:// or rediss:// URL, not ${JSON.stringify(connection)}.`);
  }
  const Redis = await loadIoRedis('The Redis store');
  // A claim must fail fast while Redis is away (the client gets a 503 and retries): not queue for ioredis'
  // twenty reconnection attempts, nor wait on a connection that a partition left open without answers
  // (ioredis has no command timeout of its own, and the system's keepalive starts after 2 hours). The
  // caller's own options win.
  const defaults = { maxRetriesPerRequest: 1, commandTimeout: 2_000, keepAlive: 10_000 };
  if (typeof connection === 'string') return new Redis(connection, defaults);
  const { url, ...rest } = connection;
  return url ? new Redis(url, { ...defaults, ...rest }) : new Redis({ ...defaults, ...rest });
}

function isRedisClient(value: unknown): value is RedisClient {
  return typeof value === 'object' && value !== null && typeof (value as RedisClient).defineCommand === 'function';
}

function isStore(value: unknown): value is IdempotencyStore {
  const store = value as Partial<IdempotencyStore> | null;
  return typeof store === 'object' && store !== null && typeof store.claim === 'function' && typeof store.complete === 'function';
}
