import { randomBytes } from 'node:crypto';
import { DataSource } from 'typeorm';
import { type IdempotencyStore, MySqlIdempotencyStore, mysqlIdempotencyEntities, mysqlIdempotencyMigrations, withEncryptionAtRest } from 'nestjs-idempotency';
import { testIdempotencyStore } from 'nestjs-idempotency/testing';
import { createDatabase, dropDatabase, mariadbUrl } from '../support/mariadb';

/** The contract every store keeps, run against the MySQL store on the local MariaDB, in a database of its own each. */
async function mysqlStore(options: { schema: 'migrations' | 'synchronize' }, wrap = (store: IdempotencyStore) => store) {
  const database = await createDatabase('contract');
  const dataSource = await new DataSource({
    type: 'mariadb',
    url: mariadbUrl(database),
    ...(options.schema === 'migrations'
      ? { migrations: [...mysqlIdempotencyMigrations], migrationsRun: true }
      : { entities: [...mysqlIdempotencyEntities], synchronize: true }),
    poolSize: 10,
  }).initialize();
  return {
    store: wrap(new MySqlIdempotencyStore(dataSource)),
    countRecords: async () => Number((await dataSource.query<Array<{ n: number }>>('SELECT count(*) AS n FROM idempotency_records'))[0].n),
    close: async () => {
      await dataSource.destroy();
      await dropDatabase(database);
    },
  };
}

testIdempotencyStore('MariaDB (MySqlIdempotencyStore)', () => mysqlStore({ schema: 'migrations' }));
testIdempotencyStore('MariaDB, tables made by synchronize from the entities', () => mysqlStore({ schema: 'synchronize' }));
testIdempotencyStore('MariaDB, encrypted at rest', () =>
  mysqlStore({ schema: 'migrations' }, (store) => withEncryptionAtRest(store, { keys: [{ id: 'contract', key: randomBytes(32) }] })),
);
