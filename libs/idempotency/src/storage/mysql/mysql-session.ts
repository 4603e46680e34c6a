import { closeQuietly, notPast, QueryRunnerReleasedError } from '../postgres/postgres-session';
import type { DataSourceLike, QueryRunnerLike } from '../typeorm-like';
import { explainMySqlSetupError } from './mysql-errors';

/** What the store needs to know of the server, asked once. */
export interface MySqlServer {
  version: string;
  mariadb: boolean;
  /** `FOR UPDATE SKIP LOCKED`: MariaDB 10.6, MySQL 8.0. */
  skipLocked: boolean;
  /** `idle_transaction_timeout`: MariaDB 10.3 (MySQL has none). */
  idleTransactionTimeout: boolean;
}

export interface MySqlSendOptions {
  /** The connection of an open transaction; without it, one from the pool for this statement. */
  runner?: QueryRunnerLike;
  /** Not sent once this has passed (`Date.now()` ms) by the time a pooled connection comes. */
  deadline?: number;
  /** The longest the statement may wait for a row lock (see {@link MySqlSession.boundLockWait}). */
  lockWaitMs?: number;
}

export interface MySqlResult<T> {
  rows: T[];
  /** Rows changed, or found by an UPDATE (mysql2 asks the server for found rows). */
  affected: number;
  /** The OK packet's insert id: what `LAST_INSERT_ID(expr)` set in the statement, else 0. */
  insertId: number;
}

/**
 * How the MySQL store talks to MySQL or MariaDB through the application's TypeORM DataSource (driver
 * mysql2, no pool of its own): one statement on the pool or on an open transaction's connection, with its
 * lock wait bounded, and short transactions of its own.
 */
export class MySqlSession {
  private serverInfo?: Promise<MySqlServer>;

  constructor(readonly dataSource: DataSourceLike) {}

  /** The server's flavour and version, read once (again after a failed read). */
  server(): Promise<MySqlServer> {
    this.serverInfo ??= this.dataSource.query<Array<{ version: string }>>('SELECT VERSION() AS version').then(
      ([{ version }]) => describeServer(version),
      (error: unknown) => {
        this.serverInfo = undefined;
        throw error;
      },
    );
    return this.serverInfo;
  }

  async send<T = unknown>(sql: string, values: unknown[], options: MySqlSendOptions = {}): Promise<MySqlResult<T>> {
    const { runner, deadline, lockWaitMs } = options;
    if (runner?.isReleased) throw new QueryRunnerReleasedError();
    const text = lockWaitMs === undefined ? sql : this.boundLockWait(await this.server(), sql, lockWaitMs);
    const own = runner ?? this.dataSource.createQueryRunner('master');
    try {
      if (!runner && deadline !== undefined) {
        await own.connect();
        notPast(deadline);
      }
      const result = await own.query(text, values, true);
      const raw = (result as { raw?: { insertId?: number } }).raw;
      return { rows: (result.records ?? []) as T[], affected: result.affected ?? 0, insertId: Number(raw?.insertId ?? 0) };
    } catch (error) {
      throw explainMySqlSetupError(error);
    } finally {
      if (!runner) await own.release();
    }
  }

  /**
   * Bounds one statement's lock wait. MariaDB: `SET STATEMENT max_statement_time=... FOR`, to the millisecond
   * (it ends the statement whatever it waits for; the statements it bounds wait for nothing else).
   * MySQL: the `SET_VAR(innodb_lock_wait_timeout)` hint, in whole seconds, at least one: its only way.
   */
  boundLockWait(server: MySqlServer, sql: string, ms: number): string {
    if (server.mariadb) return `SET STATEMENT max_statement_time=${(Math.max(1, Math.ceil(ms)) / 1000).toFixed(3)} FOR ${sql}`;
    return sql.replace(/^\s*(\w+)/, `$1 /*+ SET_VAR(innodb_lock_wait_timeout=${lockWaitSeconds(ms)}) */`);
  }

  /** Runs `work` in a READ COMMITTED transaction of its own, committed if it returns, rolled back if it throws. */
  async transaction<T>(work: (runner: QueryRunnerLike) => Promise<T>, deadline?: number): Promise<T> {
    const runner = this.dataSource.createQueryRunner('master');
    await runner.connect();
    try {
      notPast(deadline);
      // READ COMMITTED: InnoDB takes no gap locks for the reads, so claims on neighbouring keys never deadlock.
      await runner.startTransaction('READ COMMITTED');
      const result = await work(runner);
      await runner.commitTransaction();
      return result;
    } catch (error) {
      await closeQuietly(runner);
      throw explainMySqlSetupError(error);
    } finally {
      if (!runner.isReleased) await runner.release();
    }
  }
}

/** `innodb_lock_wait_timeout` takes whole seconds: a wait in ms, rounded up, at least 1. */
export function lockWaitSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

export function describeServer(version: string): MySqlServer {
  const mariadb = /mariadb/i.test(version);
  const [major = 0, minor = 0] = version.split(/[.-]/).map(Number);
  const atLeast = (wantMajor: number, wantMinor: number) => major > wantMajor || (major === wantMajor && minor >= wantMinor);
  return {
    version,
    mariadb,
    skipLocked: mariadb ? atLeast(10, 6) : atLeast(8, 0),
    idleTransactionTimeout: mariadb && atLeast(10, 3),
  };
}
