import IORedis from 'ioredis';
import { DataSource } from 'typeorm';
import { idempotencyMigrations, RedisIdempotencyStore, TypeOrmIdempotencyStore } from 'nestjs-idempotency';
import { testIdempotencyStore } from 'nestjs-idempotency/testing';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { REDIS_URL, uniquePrefix } from '../support/redis';

/** The contract every store keeps, run against both built-in stores on the real servers. */
async function postgresStore(options: { preparedStatements?: boolean } = {}) {
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
    store: new TypeOrmIdempotencyStore(dataSource, options),
    countRecords: async () => Number((await dataSource.query(`SELECT count(*)::int AS n FROM "${schema}".idempotency_records`))[0].n),
    close: async () => {
      await dataSource.destroy();
      await dropSchema(schema);
    },
  };
}

testIdempotencyStore('PostgreSQL (TypeOrmIdempotencyStore)', () => postgresStore());
testIdempotencyStore('PostgreSQL without prepared statements', () => postgresStore({ preparedStatements: false }));

testIdempotencyStore('Redis (RedisIdempotencyStore)', async () => {
  const client = new IORedis(REDIS_URL);
  const prefix = `${uniquePrefix('contract')}:`;
  return {
    store: new RedisIdempotencyStore(client, { prefix }),
    close: async () => {
      const keys = await client.keys(`${prefix}*`);
      if (keys.length > 0) await client.del(...keys);
      await client.quit();
    },
  };
});
