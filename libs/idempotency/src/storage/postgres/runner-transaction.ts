import type { QueryRunnerLike } from '../typeorm-like';

/**
 * A QueryRunner's transaction whose START TRANSACTION and COMMIT go out in one write with a statement of the store
 * (see pipelined-statements.ts) rather than through `startTransaction()` / `commitTransaction()`. The runner must
 * end up as those would leave it: the handler's `manager.transaction()` reads `isTransactionActive` and
 * `transactionDepth` to take a SAVEPOINT instead of a second BEGIN, and entity subscribers (the outbox's among them)
 * expect the transaction events. This mirrors TypeORM 1.x's PostgresQueryRunner.startTransaction() and
 * commitTransaction(); a runner that does not look like one is left to those methods (`tracksTransactions`).
 * TypeORM's query logger and beforeQuery/afterQuery events do not see these START TRANSACTION and COMMIT, as they
 * never saw the store's named statements.
 */

type TransactionEvent = 'BeforeTransactionStart' | 'AfterTransactionStart' | 'BeforeTransactionCommit' | 'AfterTransactionCommit';

/** TypeORM's own bookkeeping of a QueryRunner's transaction (`transactionDepth` is protected in its types). */
interface TypeOrmTransactionState {
  isTransactionActive: boolean;
  transactionDepth: number;
  broadcaster: { broadcast(event: TransactionEvent): Promise<void> };
}

/** Whether the runner keeps TypeORM's transaction state, with no transaction open yet (`depth` 0) or one (`depth` 1). */
export function tracksTransactions(runner: QueryRunnerLike, depth: 0 | 1): boolean {
  const state = runner as unknown as Partial<TypeOrmTransactionState>;
  return typeof state.broadcaster?.broadcast === 'function' && state.transactionDepth === depth && state.isTransactionActive === (depth === 1);
}

/**
 * Runs `send`, which writes START TRANSACTION with the transaction's first statement, as `startTransaction()`
 * would have run START TRANSACTION. One difference: subscribers' afterTransactionStart runs after that first statement.
 */
export async function beginOnRunner<T>(runner: QueryRunnerLike, send: () => Promise<T>): Promise<T> {
  const state = runner as unknown as TypeOrmTransactionState;
  state.isTransactionActive = true;
  try {
    await state.broadcaster.broadcast('BeforeTransactionStart');
  } catch (error) {
    state.isTransactionActive = false;
    throw error;
  }
  // Counted before the write: if the batch fails, the caller rolls back (closeQuietly), which at depth 1 sends
  // ROLLBACK and leaves the runner at depth 0; if START TRANSACTION itself never ran, that ROLLBACK only warns.
  state.transactionDepth += 1;
  const result = await send();
  await state.broadcaster.broadcast('AfterTransactionStart');
  return result;
}

/**
 * Runs `send`, which writes a last statement with COMMIT, as `commitTransaction()` would have run COMMIT. Nothing
 * changes if it fails: the transaction is still active, and the caller rolls it back. Subscribers'
 * beforeTransactionCommit runs before that last statement.
 */
export async function commitOnRunner<T>(runner: QueryRunnerLike, send: () => Promise<T>): Promise<T> {
  const state = runner as unknown as TypeOrmTransactionState;
  await state.broadcaster.broadcast('BeforeTransactionCommit');
  const result = await send();
  state.isTransactionActive = false;
  state.transactionDepth -= 1;
  await state.broadcaster.broadcast('AfterTransactionCommit');
  return result;
}
