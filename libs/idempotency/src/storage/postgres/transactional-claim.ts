import { randomUUID } from 'node:crypto';
import type { QueryRunnerLike } from '../typeorm-like';
import { TransactionAbortedError } from '../../errors/transaction-aborted.error';
import type { ClaimRef, ClaimRequest, StoredResponse, TransactionalClaim, TransactionalClaimOutcome, VersionOutcome } from '../idempotency-store';
import { closeQuietly, connectWithin, milliseconds, msFromNow, type PostgresSession } from './postgres-session';
import { completeParams } from './record-statements';
import type { RecordsTable } from './records-table';
import { isLockTimeout, SQL_STATE, sqlState } from './sql-state';

/** The transactional claim's waits, as `claimInTransaction()` takes them. */
export interface TransactionWaits {
  /** The whole wait of the claim: for a pooled connection, and for a concurrent holder of the key. */
  lockTimeoutMs: number;
  idleTimeoutMs: number;
  handlerLockTimeoutMs: number;
}

/**
 * Opens a transaction on a pooled connection and claims (scope, key) in it; unless the outcome is `claimed`,
 * the transaction is closed again. The connection, the first read of the default isolation and the lock on
 * the key all come within `lockTimeoutMs`.
 */
export async function claimInTransaction(
  session: PostgresSession,
  records: RecordsTable,
  versionsTable: string,
  request: ClaimRequest,
  waits: TransactionWaits,
): Promise<TransactionalClaimOutcome> {
  const deadline = Date.now() + waits.lockTimeoutMs;
  const runner = session.dataSource.createQueryRunner();
  await connectWithin(runner, waits.lockTimeoutMs);
  try {
    // The claim's first statement goes out with START TRANSACTION (PostgresSession.beginWith).
    const isolation = await session.claimIsolation(runner);
    const { outcome, lockTimeoutMs } = await records.claimOnTransaction(runner, isolation, request, randomUUID(), deadline, waits.idleTimeoutMs);
    if (outcome.status !== 'claimed') {
      await runner.commitTransaction();
      await runner.release();
      return outcome;
    }
    // The claim's lock_timeout is what was left of the wait; the handler's own lock waits get the whole of it
    // again. Only a claim that waited (on a lock, or a tenth of the wait for a connection) pays this round trip.
    const handlerMs = waits.handlerLockTimeoutMs;
    if (handlerMs - lockTimeoutMs > Math.max(20, handlerMs / 10)) {
      await session.send(`SELECT set_config('lock_timeout', $1, true)`, [milliseconds(handlerMs)], { runner });
    }
    return { ...outcome, claim: heldClaim(session, runner, outcome.ref, records, versionsTable) };
  } catch (error) {
    await closeQuietly(runner);
    if (isLockTimeout(error)) return { status: 'in-flight', retryAfterMs: 1000 };
    throw session.explain(error);
  }
}

/**
 * A claim holding its transaction (and its pooled connection) open across the handler. A plain object, as
 * wrappers copy its members.
 */
function heldClaim(session: PostgresSession, runner: QueryRunnerLike, ref: ClaimRef, records: RecordsTable, versionsTable: string): TransactionalClaim {
  return {
    ref,
    manager: runner.manager,
    // A statement of the handler that failed (and was caught) left the transaction aborted: PostgreSQL refuses
    // the completion with 25P02, and nothing of it can commit. That is the handler's doing, not the store's.
    complete: async (response: StoredResponse, ttlMs: number) => {
      try {
        // The completion and COMMIT, in one write where they can be. The completion fails where it finds no
        // record of this claim (it expired, or was taken over; an expired partitioned record is left alone), so
        // that the server skips the COMMIT: nothing may commit without its answer, or a retry would run the
        // handler again over its committed writes.
        await session.commitWith(runner, records.owned.completeOrFail, completeParams(ref, response, ttlMs));
      } catch (error) {
        await closeQuietly(runner);
        if (sqlState(error) === SQL_STATE.inFailedSqlTransaction) throw new TransactionAbortedError({ cause: error });
        if (sqlState(error) === SQL_STATE.recordNotCompleted) {
          throw new Error("The claim's record could not be completed: it expired while the handler ran. Nothing was committed.", { cause: error });
        }
        throw error;
      }
      await runner.release();
    },
    rollback: async () => {
      try {
        await runner.rollbackTransaction();
      } finally {
        await runner.release();
      }
    },
    advanceVersion: async (resource: string, version: string, ttlMs: number): Promise<VersionOutcome> => {
      try {
        // ON CONFLICT DO UPDATE locks the resource's row and, once a concurrent holder commits, decides on its
        // newest version; the lock is held to this transaction's end, across the handler. The wait is bounded by
        // the lock_timeout the claim set.
        const updated = await session.send(
          `INSERT INTO ${versionsTable} AS v (scope, resource, version, expires_at)
           VALUES ($1, $2, $3::numeric, ${msFromNow('$4')})
           ON CONFLICT (scope, resource) DO UPDATE
             SET version = EXCLUDED.version, expires_at = GREATEST(v.expires_at, EXCLUDED.expires_at)
             WHERE v.version <= EXCLUDED.version OR v.expires_at <= clock_timestamp()
           RETURNING 1`,
          [ref.scope, resource, version, ttlMs],
          { runner },
        );
        return updated.rows.length === 1 ? 'applied' : 'stale';
      } catch (error) {
        if (isLockTimeout(error)) return 'busy';
        throw error;
      }
    },
  };
}
