import { IdempotencyConfigurationError } from '../../errors/configuration.errors';
import { requireOptionalPeer } from '../../optional-peer';
import { lazyList } from '../lazy-list';
import { CreateMySqlIdempotencyRecords1763900000100 } from './migrations/1763900000100-create-mysql-idempotency-records';
import { CreateMySqlIdempotencyVersions1763900000101 } from './migrations/1763900000101-create-mysql-idempotency-versions';
import type { MySqlIdempotencyRecord, MySqlIdempotencyVersion } from './mysql-record.entity';

/** The MySQL store's entity classes. */
export type MySqlIdempotencyEntity = typeof MySqlIdempotencyRecord | typeof MySqlIdempotencyVersion;

/**
 * Add to a MySQL or MariaDB DataSource's `entities` (needed with `synchronize: true`). Declared with TypeORM's
 * decorators, they are loaded on the first read of this list, not when the library is imported.
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'mariadb', url, entities: [Order, ...mysqlIdempotencyEntities], synchronize: true })
 */
export const mysqlIdempotencyEntities: MySqlIdempotencyEntity[] = lazyList(() => {
  const typeorm = requireOptionalPeer('typeorm');
  if (typeorm.missing) {
    throw new IdempotencyConfigurationError(`mysqlIdempotencyEntities needs the package ${typeorm.missing}: npm install typeorm @nestjs/typeorm mysql2`);
  }
  /* eslint-disable @typescript-eslint/no-require-imports -- loaded on first read, once TypeORM is known to be there */
  const entities = require('./mysql-record.entity') as typeof import('./mysql-record.entity');
  /* eslint-enable @typescript-eslint/no-require-imports */
  return [entities.MySqlIdempotencyRecord, entities.MySqlIdempotencyVersion];
});

/**
 * Add to a MySQL or MariaDB DataSource's `migrations`: creates the records and resource versions tables. Run them
 * as a deploy step (`npx typeorm migration:run -d data-source.js`). Loading them needs no TypeORM.
 *
 * @example
 * export default new DataSource({ type: 'mysql', url, migrations: [...mysqlIdempotencyMigrations] });
 */
export const mysqlIdempotencyMigrations = [CreateMySqlIdempotencyRecords1763900000100, CreateMySqlIdempotencyVersions1763900000101];
