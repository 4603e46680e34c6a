import { randomBytes } from 'node:crypto';
import IORedis from 'ioredis';
import { DataSource } from 'typeorm';
import {
  CreatePartitionedIdempotencyRecords1763900000010,
  type IdempotencyStore,
  idempotencyMigrations,
  PartitionedTypeOrmIdempotencyStore,
  RedisIdempotencyStore,
  TypeOrmIdempotencyStore,
  withEncryptionAtRest,
} from 'nestjs-idempotency';
import { testIdempotencyStore } from 'nestjs-idempotency/testing';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { describeEachRoute } from '../support/postgres-routes';
import { REDIS_URL, uniquePrefix } from '../support/redis';

/** The contract every store keeps, run against both built-in stores on the real servers. */
/** What the module uses: every store it builds is wrapped, encrypting when keys are given. */
const encrypted = (store: IdempotencyStore) => withEncryptionAtRest(store, { keys: [{ id: 'contract', key: randomBytes(32) }] });

/** The URL a store's DataSource connects to (a route through PgBouncer, or the server) and its prepared statements. */
interface Connection {
  url?: string;
  preparedStatements?: boolean;
}

async function postgresStore({ url = DATABASE_URL, preparedStatements }: Connection = {}, wrap = (store: IdempotencyStore) => store) {
  const schema = await createSchema('contract');
  const dataSource = await new DataSource({
    type: 'postgres',
    url,
    schema,
    migrations: [...idempotencyMigrations],
    migrationsRun: true,
    extra: { max: 10 },
  }).initialize();
  return {
    store: wrap(new TypeOrmIdempotencyStore(dataSource, { preparedStatements })),
    countRecords: async () => Number((await dataSource.query<Array<{ n: number }>>(`SELECT count(*)::int AS n FROM "${schema}".idempotency_records`))[0].n),
    close: async () => {
      await dataSource.destroy();
      await dropSchema(schema);
    },
  };
}

testIdempotencyStore('PostgreSQL without prepared statements', () => postgresStore({ preparedStatements: false }));
testIdempotencyStore('PostgreSQL, encrypted at rest', () => postgresStore({}, encrypted));

/**
 * No countRecords: the partitioned store deletes no record one by one, it drops a partition once its range is
 * over and every record in it expired; the suite's records, all in the current partition, stay until then.
 */
async function partitionedStore({ url = DATABASE_URL, preparedStatements }: Connection = {}) {
  const schema = await createSchema('contract_partitioned');
  const dataSource = await new DataSource({
    type: 'postgres',
    url,
    schema,
    migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
    migrationsRun: true,
    extra: { max: 10 },
  }).initialize();
  const store = new PartitionedTypeOrmIdempotencyStore(dataSource, { interval: '1d', preparedStatements });
  await store.preparePartitions();
  return {
    store,
    close: async () => {
      await dataSource.destroy();
      await dropSchema(schema);
    },
  };
}

// Both PostgreSQL stores straight to the server and through PgBouncer in transaction pooling.
describeEachRoute('PostgreSQL', (route) => {
  testIdempotencyStore('PostgreSQL (TypeOrmIdempotencyStore)', () => postgresStore(route));
  testIdempotencyStore('PostgreSQL, time-partitioned (PartitionedTypeOrmIdempotencyStore)', () => partitionedStore(route));
});

function redisStore(wrap = (store: IdempotencyStore) => store, options: { stringNumbers?: boolean; enableAutoPipelining?: boolean } = {}) {
  const client = new IORedis(REDIS_URL, options);
  const prefix = `${uniquePrefix('contract')}:`;
  return Promise.resolve({
    store: wrap(new RedisIdempotencyStore(client, { prefix })),
    close: async () => {
      const keys = await client.keys(`${prefix}*`);
      if (keys.length > 0) await client.del(...keys);
      await client.quit();
    },
  });
}

testIdempotencyStore('Redis (RedisIdempotencyStore)', () => redisStore());
testIdempotencyStore('Redis, encrypted at rest', () => redisStore(encrypted));
// A client of the app's own may read integers as strings.
testIdempotencyStore('Redis, on a client with stringNumbers', () => redisStore(undefined, { stringNumbers: true }));
// A client of the app's own may send concurrent commands as one pipeline.
testIdempotencyStore('Redis, auto-pipelined', () => redisStore(undefined, { enableAutoPipelining: true }));
