import { CreateMySqlIdempotencyRecords1763900000100 } from './migrations/1763900000100-create-mysql-idempotency-records';
import { CreateMySqlIdempotencyVersions1763900000101 } from './migrations/1763900000101-create-mysql-idempotency-versions';
import { MySqlIdempotencyRecord, MySqlIdempotencyVersion } from './mysql-record.entity';

/**
 * Add to a MySQL or MariaDB DataSource's `entities` (needed with `synchronize: true`).
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'mariadb', url, entities: [Order, ...mysqlIdempotencyEntities], synchronize: true })
 */
export const mysqlIdempotencyEntities = [MySqlIdempotencyRecord, MySqlIdempotencyVersion];

/**
 * Add to a MySQL or MariaDB DataSource's `migrations`: creates the records and resource versions tables.
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'mysql', url, migrations: [...mysqlIdempotencyMigrations], migrationsRun: true })
 */
export const mysqlIdempotencyMigrations = [CreateMySqlIdempotencyRecords1763900000100, CreateMySqlIdempotencyVersions1763900000101];
