import type { DataSourceLike, QueryRunnerLike } from '../typeorm-like';
import { batchClient, nodePostgresParts, primaryPool, queryOnPooledClient, runnerClient, runsOnNodePostgres, statementName } from './node-postgres';
import { type NodePostgresParts, type PipelinedResult, type PipelinedStatement, sendStatements } from './pipelined-statements';
import { beginOnRunner, commitOnRunner, tracksTransactions } from './runner-transaction';
import { explainSetupError, RECORDS_TABLE_FIX } from './sql-state';

/** How a statement is sent: on a transaction's runner or on the pool; named or as plain text. */
export interface SendOptions {
  /** The connection of an open transaction; without it, the pool. */
  runner?: QueryRunnerLike;
  /** Named, so that each connection plans it once; default: the session's `preparedStatements`. */
  prepared?: boolean;
  /** Not sent once this has passed (`Date.now()` ms) by the time a pooled connection comes. */
  deadline?: number;
}

export interface PostgresSessionOptions {
  /**
   * Named prepared statements, planned once per connection. Default: on where TypeORM runs on
   * node-postgres, off with another driver (PGlite's takes only text).
   */
  preparedStatements?: boolean;
  /** What a missing or outdated table is fixed with, in the configuration error that says so. */
  missingTableFix?: string;
}

/** The isolation level a claim's transaction asks for; `undefined` where it is the database's default. */
export type ClaimIsolation = 'READ COMMITTED' | undefined;

/**
 * How a store talks to PostgreSQL through the application's TypeORM DataSource (no pool of its own): one
 * statement on the pool or on an open transaction's connection, and short transactions of its own.
 */
export class PostgresSession {
  readonly prepared: boolean;
  private readonly missingTableFix: string;
  /** Whether a transaction opened without an isolation level is READ COMMITTED; asked once. */
  private readCommittedByDefault?: Promise<boolean>;
  /** node-postgres' parts that batches of statements are built from; `null` where they are missing. */
  private parts?: NodePostgresParts | null;

  constructor(
    readonly dataSource: DataSourceLike,
    options: PostgresSessionOptions = {},
  ) {
    this.prepared = options.preparedStatements ?? runsOnNodePostgres(dataSource);
    this.missingTableFix = options.missingTableFix ?? RECORDS_TABLE_FIX;
  }

  /**
   * Sends one statement and returns its rows and how many it changed. Named on node-postgres: planning the
   * claim's statement costs PostgreSQL more than running it. `prepared: false` has it planned at each run,
   * for its parameters.
   */
  async send<T = unknown>(sql: string, values: unknown[], options: SendOptions = {}): Promise<{ rows: T[]; count: number }> {
    const { runner, prepared = this.prepared, deadline } = options;
    // A released runner's connection may already be another request's.
    if (runner?.isReleased) throw new QueryRunnerReleasedError();
    try {
      const { rows, count } = prepared ? await this.sendNamed(sql, values, runner, deadline) : await this.sendText(sql, values, runner, deadline);
      return { rows: rows as T[], count };
    } catch (error) {
      throw this.explain(error);
    }
  }

  /** A setup mistake as a configuration error that names this session's fix; any other error as is. */
  explain(error: unknown): unknown {
    return explainSetupError(error, this.missingTableFix);
  }

  /**
   * Runs `work` in a READ COMMITTED transaction of its own, committed if it returns. A claim whose caller
   * stopped waiting (`deadline`) by the time the connection comes is not started.
   */
  async transaction<T>(work: (runner: QueryRunnerLike) => Promise<T>, deadline?: number): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      notPast(deadline);
      await runner.startTransaction(await this.claimIsolation(runner));
      const result = await work(runner);
      await runner.commitTransaction();
      return result;
    } catch (error) {
      await closeQuietly(runner);
      throw this.explain(error);
    } finally {
      // closeQuietly may have released it already.
      if (!runner.isReleased) await runner.release();
    }
  }

  /**
   * Opens a transaction on `runner` and sends `sql` as its first statement. With named statements on
   * node-postgres, START TRANSACTION and `sql` go out in one write (one round trip); otherwise
   * `runner.startTransaction()` first. Either way the runner's transaction is open afterwards, or, if this throws,
   * possibly open and to be rolled back.
   */
  async beginWith<T = unknown>(runner: QueryRunnerLike, isolation: ClaimIsolation, sql: string, values: unknown[]): Promise<{ rows: T[]; count: number }> {
    const send = await this.batchOn(runner, 0);
    if (!send) {
      await runner.startTransaction(isolation);
      return this.send<T>(sql, values, { runner });
    }
    const begin = isolation ? `START TRANSACTION ISOLATION LEVEL ${isolation}` : 'START TRANSACTION';
    const [, first] = await beginOnRunner(runner, () => send([{ text: begin }, { name: statementName(sql), text: sql, values }]));
    return { rows: first.rows as T[], count: first.rowCount ?? 0 };
  }

  /**
   * Sends `sql` on `runner`'s transaction, then commits it: in one write where `beginWith()` can, otherwise as two
   * statements. In one write COMMIT runs whatever `sql` returned, so `sql` must FAIL where the transaction must not
   * commit (the server then skips the COMMIT, and the caller rolls back).
   */
  async commitWith<T = unknown>(runner: QueryRunnerLike, sql: string, values: unknown[]): Promise<{ rows: T[]; count: number }> {
    const send = await this.batchOn(runner, 1);
    if (!send) {
      const result = await this.send<T>(sql, values, { runner });
      await runner.commitTransaction();
      return result;
    }
    const [last] = await commitOnRunner(runner, () => send([{ name: statementName(sql), text: sql, values }, { text: 'COMMIT' }]));
    return { rows: last.rows as T[], count: last.rowCount ?? 0 };
  }

  /**
   * How statements go out in one write on `runner`, at transaction `depth`: only with named statements, on
   * node-postgres' JavaScript client, on a runner that keeps TypeORM's transaction state; otherwise none.
   */
  private async batchOn(runner: QueryRunnerLike, depth: 0 | 1): Promise<((statements: PipelinedStatement[]) => Promise<PipelinedResult[]>) | undefined> {
    if (!this.prepared || runner.isReleased || !tracksTransactions(runner, depth)) return undefined;
    this.parts ??= nodePostgresParts(this.dataSource) ?? null;
    const parts = this.parts;
    const client = parts ? await batchClient(runner) : undefined;
    if (!parts || !client) return undefined;
    return async (statements) => {
      try {
        return await sendStatements(client, statements, parts);
      } catch (error) {
        throw this.explain(error);
      }
    };
  }

  /**
   * What a claim's transaction asks for to run in READ COMMITTED: nothing where that is the default, which
   * saves it a SET TRANSACTION. The default is asked once, on the connection the claim already holds, so that
   * the question waits for no other connection.
   */
  async claimIsolation(runner: QueryRunnerLike): Promise<ClaimIsolation> {
    const { type, isolationLevel } = this.dataSource.options as { type: string; isolationLevel?: string };
    if (type === 'postgres' && isolationLevel) return 'READ COMMITTED';
    this.readCommittedByDefault ??= this.send<{ level: string }>(`SELECT current_setting('default_transaction_isolation') AS level`, [], { runner }).then(
      ({ rows }) => rows[0]?.level === 'read committed',
      (error: unknown) => {
        this.readCommittedByDefault = undefined;
        throw error;
      },
    );
    return (await this.readCommittedByDefault) ? undefined : 'READ COMMITTED';
  }

  private async sendNamed(sql: string, values: unknown[], runner?: QueryRunnerLike, deadline?: number): Promise<{ rows: unknown[]; count: number }> {
    const pool = primaryPool(this.dataSource);
    const result = runner
      ? await (await runnerClient(runner)).query({ name: statementName(sql), text: sql, values })
      : deadline !== undefined
        ? await queryOnPooledClient(pool, sql, values, () => notPast(deadline))
        : await pool.query({ name: statementName(sql), text: sql, values });
    return { rows: result.rows, count: result.rowCount ?? 0 };
  }

  private async sendText(sql: string, values: unknown[], runner?: QueryRunnerLike, deadline?: number): Promise<{ rows: unknown[]; count: number }> {
    const own = runner ?? this.dataSource.createQueryRunner('master');
    try {
      if (!runner && deadline !== undefined) {
        await own.connect();
        notPast(deadline);
      }
      const result = await own.query(sql, values, true);
      return { rows: result.records ?? [], count: result.affected ?? 0 };
    } finally {
      if (!runner) await own.release();
    }
  }
}

/** `$n` milliseconds from now on the database clock (`now()` is frozen at the start of a transaction). */
export const msFromNow = (param: string) => `clock_timestamp() + ${param}::float8 * interval '1 millisecond'`;

/** A duration as PostgreSQL settings take it; 0 would mean "no limit", so never less than 1ms. */
export function milliseconds(ms: number): string {
  return `${Math.max(1, Math.ceil(ms))}ms`;
}

/**
 * Stops a claim whose caller has given up waiting (it answered 503): started now, it would hold the key for a
 * request nobody runs. Checked once the claim has its pooled connection, before its first statement.
 */
export function notPast(deadline: number | undefined): void {
  if (deadline !== undefined && Date.now() >= deadline) {
    throw new Error("No pooled connection came before the claim's caller stopped waiting (waitTimeout): the claim was not started.");
  }
}

/**
 * Takes a pooled connection for the runner, waiting no longer than the claim may wait: every running
 * handler in transaction mode holds one, and a claim must not queue behind them past its `waitTimeout`.
 * A connection that comes after that goes straight back to the pool.
 */
export async function connectWithin(runner: QueryRunnerLike, ms: number): Promise<void> {
  const connecting = runner.connect();
  // A plain timer: aborting a timers/promises sleep builds an AbortError (with its stack) on every claim.
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), Math.max(0, ms))));
  const late = await Promise.race([connecting.then(() => false), gaveUp]).finally(() => clearTimeout(timer));
  if (!late) return;
  connecting.then(
    () => runner.release(),
    () => undefined, // It failed on its own: nothing to give back, and nobody waits for it any more.
  );
  throw new Error(
    `No pooled connection came within the claim's waitTimeout (${Math.round(ms)} ms): every connection is taken ` +
      '(in transaction mode each running handler holds one). Raise the pool size, or lower the load per instance.',
  );
}

/** Ends a transaction that failed; the original error is what the caller reports. */
export async function closeQuietly(runner: QueryRunnerLike): Promise<void> {
  if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
  if (!runner.isReleased) await runner.release();
}

/** A statement sent on a transaction's connection after it went back to the pool (TypeORM's own message). */
export class QueryRunnerReleasedError extends Error {
  override readonly name = 'QueryRunnerAlreadyReleasedError';

  constructor() {
    super('Query runner already released. Cannot run queries anymore.');
  }
}
