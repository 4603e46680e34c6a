import type { DataSourceLike } from '../typeorm-like';
import { IDEMPOTENCY_TABLE, qualifiedTableName } from '../table-name';
import { PlainRecordsTable } from './plain-records-table';
import { PostgresIdempotencyStore } from './postgres-idempotency.store';
import { PostgresSession } from './postgres-session';

export interface TypeOrmIdempotencyStoreOptions {
  /**
   * Named prepared statements, planned once per connection. Default: on where TypeORM runs on
   * node-postgres, off with another driver (PGlite's takes only text). See `IdempotencyModuleOptions`.
   */
  preparedStatements?: boolean;
}

/**
 * The PostgreSQL store, on the application's TypeORM DataSource (no pool of its own), with its records in
 * `idempotency_records`. The claim is the algorithm of the library, and reads as its SQL in
 * {@link PlainRecordsTable}: insert-or-read in one statement; where the record must change, insert, `SELECT ...
 * FOR UPDATE`, decide, update, in a transaction.
 *
 * @example
 * const store = new TypeOrmIdempotencyStore(dataSource);
 * const outcome = await store.claim({ scope: 'POST /orders', key: 'k1', fingerprint: null, leaseMs: 30_000, ttlMs: 86_400_000 });
 */
export class TypeOrmIdempotencyStore extends PostgresIdempotencyStore {
  constructor(dataSource: DataSourceLike, options: TypeOrmIdempotencyStoreOptions = {}) {
    const session = new PostgresSession(dataSource, options);
    super(session, new PlainRecordsTable(session, qualifiedTableName(dataSource, IDEMPOTENCY_TABLE)));
  }
}
