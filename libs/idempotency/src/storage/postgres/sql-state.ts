import { IdempotencyConfigurationError } from '../../errors/configuration.errors';

/** PostgreSQL's SQLSTATEs the stores act on. */
export const SQL_STATE = {
  /** `lock_timeout` ran out while waiting for a lock. */
  lockNotAvailable: '55P03',
  /** A statement cancelled (pg_cancel_backend, or statement_timeout). */
  queryCanceled: '57014',
  undefinedTable: '42P01',
  undefinedColumn: '42703',
  serializationFailure: '40001',
  /** A statement of the transaction failed: every later one is refused until it rolls back. */
  inFailedSqlTransaction: '25P02',
  /** A named statement missing on the server connection: a pooler in transaction mode handed over another one. */
  invalidStatementName: '26000',
  duplicatePreparedStatement: '42P05',
  checkViolation: '23514',
  /** Division by zero: how `completeOrFail` (record-statements.ts) says it found no record of its claim to complete. */
  recordNotCompleted: '22012',
  /** A table whose state refuses the command: a detach while another is pending. */
  objectNotInPrerequisiteState: '55000',
} as const;

/** What a missing or outdated table of the plain store is fixed with. */
export const RECORDS_TABLE_FIX =
  'Add ...idempotencyMigrations to the DataSource migrations and run them before the app starts ' +
  '(npx typeorm migration:run -d <your data source file>), or add ...idempotencyEntities with synchronize: true.';

/** The SQLSTATE of a PostgreSQL error, as node-postgres gives it or as TypeORM wraps it. */
export function sqlState(error: unknown): string | undefined {
  const failure = error as { code?: unknown; driverError?: { code?: unknown } } | undefined;
  const code = failure?.driverError?.code ?? failure?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isLockTimeout(error: unknown): boolean {
  return sqlState(error) === SQL_STATE.lockNotAvailable;
}

/**
 * A missing table or column, or a prepared statement lost by a pooler, is a setup mistake, not an outage:
 * an `IdempotencyConfigurationError` that says how to fix it. Any other error is returned as is.
 */
export function explainSetupError(error: unknown, missingTableFix = RECORDS_TABLE_FIX): unknown {
  const code = sqlState(error);
  if (code === SQL_STATE.invalidStatementName || code === SQL_STATE.duplicatePreparedStatement) {
    return new IdempotencyConfigurationError(
      `A prepared statement of nestjs-idempotency was not where it was prepared (${(error as Error).message}): the ` +
        'connection pooler in between does not keep prepared statements (PgBouncer in transaction pooling, before 1.21 ' +
        'or without max_prepared_statements). Set preparedStatements: false in IdempotencyModule.forRoot().',
      { cause: error },
    );
  }
  if (code !== SQL_STATE.undefinedTable && code !== SQL_STATE.undefinedColumn) return error;
  return new IdempotencyConfigurationError(`A table of nestjs-idempotency is missing or out of date (${(error as Error).message}). ${missingTableFix}`, {
    cause: error,
  });
}
