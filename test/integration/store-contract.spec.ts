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
import { REDIS_URL, uniquePrefix } from '../support/redis';

/** The contract every store keeps, run against both built-in stores on the real servers. */
/** What the module uses: every store it builds is wrapped, encrypting when keys are given. */
const encrypted = (store: IdempotencyStore) => withEncryptionAtRest(store, { keys: [{ id: 'contract', key: randomBytes(32) }] });

async function postgresStore(options: { preparedStatements?: boolean } = {}, wrap = (store: IdempotencyStore) => store) {
  const schema = await createSchema('contract');
  const dataSource = await new DataSource({
    type: 'postgres',
    url: DATABASE_URL,
    schema,
    migrations: [...idempotencyMigrations],
    migrationsRun: true,
    extra: { max: 10 },
  }).initialize();
  return {
    store: wrap(new TypeOrmIdempotencyStore(dataSource, options)),
    countRecords: async () => Number((await dataSource.query<Array<{ n: number }>>(`SELECT count(*)::int AS n FROM "${schema}".idempotency_records`))[0].n),
    close: async () => {
      await dataSource.destroy();
      await dropSchema(schema);
    },
  };
}

testIdempotencyStore('PostgreSQL (TypeOrmIdempotencyStore)', () => postgresStore());
testIdempotencyStore('PostgreSQL without prepared statements', () => postgresStore({ preparedStatements: false }));
testIdempotencyStore('PostgreSQL, encrypted at rest', () => postgresStore({}, encrypted));

/**
 * No countRecords: the partitioned store deletes no record one by one, it drops a partition once its range is
 * over and every record in it expired; the suite's records, all in the current partition, stay until then.
 */
async function partitionedStore() {
  const schema = await createSchema('contract_partitioned');
  const dataSource = await new DataSource({
    type: 'postgres',
    url: DATABASE_URL,
    schema,
    migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
    migrationsRun: true,
    extra: { max: 10 },
  }).initialize();
  const store = new PartitionedTypeOrmIdempotencyStore(dataSource, { interval: '1d' });
  await store.preparePartitions();
  return {
    store,
    close: async () => {
      await dataSource.destroy();
      await dropSchema(schema);
    },
  };
}

testIdempotencyStore('PostgreSQL, time-partitioned (PartitionedTypeOrmIdempotencyStore)', () => partitionedStore());

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
