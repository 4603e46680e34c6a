import { IdempotencyConfigurationError } from '../../errors/configuration.errors';

/** The server's error codes the MySQL store acts on, as mysql2 names them. */
export const MYSQL_ERROR = {
  deadlock: 'ER_LOCK_DEADLOCK',
  lockWaitTimeout: 'ER_LOCK_WAIT_TIMEOUT',
  /** MariaDB's `max_statement_time` ran out. */
  statementTimeout: 'ER_STATEMENT_TIMEOUT',
  /** MySQL's `MAX_EXECUTION_TIME` ran out. */
  queryTimeout: 'ER_QUERY_TIMEOUT',
  noSuchTable: 'ER_NO_SUCH_TABLE',
  badField: 'ER_BAD_FIELD_ERROR',
} as const;

/** What a missing or outdated table of the MySQL store is fixed with. */
export const MYSQL_TABLES_FIX =
  'Add ...mysqlIdempotencyMigrations to the DataSource migrations and run them before the app starts ' +
  '(npx typeorm migration:run -d <your data source file>), or add ...mysqlIdempotencyEntities with synchronize: true.';

/** MariaDB's own error numbers, which mysql2 (written for MySQL) has no name for. */
const MARIADB_ERRNO: Record<number, string> = { 1969: MYSQL_ERROR.statementTimeout };

/** The error code of a MySQL or MariaDB error, as mysql2 gives it or as TypeORM wraps it. */
export function mysqlErrorCode(error: unknown): string | undefined {
  type Failure = { code?: unknown; errno?: unknown };
  const failure = error as (Failure & { driverError?: Failure }) | undefined;
  const driver = failure?.driverError ?? failure;
  const byNumber = typeof driver?.errno === 'number' ? MARIADB_ERRNO[driver.errno] : undefined;
  return byNumber ?? (typeof driver?.code === 'string' ? driver.code : undefined);
}

/** A statement that gave up waiting for a row lock: the lock wait bound or the statement's time bound ran out. */
export function isLockWaitEnded(error: unknown): boolean {
  const code = mysqlErrorCode(error);
  return code === MYSQL_ERROR.lockWaitTimeout || code === MYSQL_ERROR.statementTimeout || code === MYSQL_ERROR.queryTimeout;
}

/** InnoDB chose this transaction as a deadlock's victim and rolled all of it back. */
export function isDeadlock(error: unknown): boolean {
  return mysqlErrorCode(error) === MYSQL_ERROR.deadlock;
}

/** A missing table or column is a setup mistake, not an outage: a configuration error that says the fix. */
export function explainMySqlSetupError(error: unknown): unknown {
  const code = mysqlErrorCode(error);
  if (code !== MYSQL_ERROR.noSuchTable && code !== MYSQL_ERROR.badField) return error;
  return new IdempotencyConfigurationError(`A table of nestjs-idempotency is missing or out of date (${(error as Error).message}). ${MYSQL_TABLES_FIX}`, {
    cause: error,
  });
}
