import type { QueryRunnerLike } from '../typeorm-like';
import type { ClaimOutcome, ClaimRequest } from '../idempotency-store';
import type { ClaimIsolation } from './postgres-session';
import type { OwnerStatements } from './record-statements';

/** A claim made on the open transaction of a transactional claim, and the lock_timeout it left in force. */
export interface ClaimOnTransaction {
  outcome: ClaimOutcome;
  lockTimeoutMs: number;
}

/**
 * A table of records and how a claim is made on it: the PostgreSQL store is composed with one. The plain
 * table keeps (scope, key) unique with its primary key; the partitioned one with an advisory lock per key.
 * Each decides with `decide()` of `claim/claim-state.ts`.
 */
export interface RecordsTable {
  /** Qualified and quoted. */
  readonly name: string;
  readonly owned: OwnerStatements;
  /** Claims (scope, key) for `owner`, in statements and transactions of its own. */
  claim(request: ClaimRequest, owner: string): Promise<ClaimOutcome>;
  /**
   * Opens a transaction at `isolation` on `runner` with the claim's first statement (`PostgresSession.beginWith`),
   * and claims in it, waiting for a concurrent holder of the key until `deadline` (`Date.now()` ms); it sets the
   * transaction's idle timeout to `idleTimeoutMs`. If it throws, the transaction may be open: the caller rolls back.
   */
  claimOnTransaction(
    runner: QueryRunnerLike,
    isolation: ClaimIsolation,
    request: ClaimRequest,
    owner: string,
    deadline: number,
    idleTimeoutMs: number,
  ): Promise<ClaimOnTransaction>;
  /** Deletes (or drops) expired records, up to `batchSize` where it deletes them one by one; returns how many. */
  purge(batchSize: number): Promise<number>;
  /** Runs a claim so that the new record finds its place (the partitioned table makes a missing partition). */
  withRoom<T>(claim: () => Promise<T>): Promise<T>;
}
