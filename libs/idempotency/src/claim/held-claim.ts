import type { EntityManagerLike } from '../storage/typeorm-like';
import type { InFlightPolicy } from '../route-functions';
import type { ClaimOutcome, ClaimRequest, StoredResponse, VersionOutcome } from '../storage/idempotency-store';

/**
 * How a claim is held: `lease`, a record in flight that the handler's process renews; `transaction`, a row
 * locked in an open database transaction that the handler's writes join.
 */
export type ClaimMode = 'lease' | 'transaction';

/**
 * A claim attempt with the policy around it: waiting, lease renewal and transaction mode. `deadline`, where
 * given, is when the request stops waiting (its start plus `waitTimeout`); else `waitTimeout` from now.
 */
export interface BeginRequest extends ClaimRequest {
  maxLeaseMs: number;
  waitTimeoutMs: number;
  onInFlight: InFlightPolicy;
  transaction: boolean;
  /** An HTTP request: its outcomes carry the status the client gets. */
  http?: boolean;
}

/**
 * What the client gets when a held claim is given back without a stored answer; published as the
 * request's outcome (default `released`).
 */
export interface ReleaseAnswer {
  outcome?: 'released' | 'stale-skipped' | 'rejected-in-flight' | 'store-unavailable';
  status?: number;
  /** Why, for the log line of `store-unavailable`. */
  error?: Error;
}

interface HeldClaimBase {
  readonly attempt: number;
  readonly takenOver: boolean;
  /**
   * Stores the response; false if the claim was lost (lease taken over). Throws when the answer could not be
   * stored in time (waitTimeout, at least 1 s), and `TransactionAbortedError` when the handler's own failed
   * statement aborted the claim's transaction (nothing of it was committed).
   */
  complete(response: StoredResponse, ttlMs: number): Promise<boolean>;
  /** Gives the key back (transaction mode: rolls back), so that the next attempt runs again. */
  release(answer?: ReleaseAnswer): Promise<void>;
  /**
   * The handler ended without an answer to store. Lease mode stops renewing: the handler may have taken effect,
   * so the key is not handed to an immediate retry, and its lease frees it. Transaction mode rolls back.
   */
  abandon(): void;
}

export interface LeaseClaim extends HeldClaimBase {
  readonly mode: 'lease';
}

export interface TransactionClaim extends HeldClaimBase {
  readonly mode: 'transaction';
  /** The claim's transaction: business writes made through it commit with the stored response. */
  readonly manager: EntityManagerLike;
  /** See `TransactionalClaim.advanceVersion`. */
  advanceVersion?(resource: string, version: string, ttlMs: number): Promise<VersionOutcome>;
}

/** A claim this process holds: it must end with `complete()`, `release()` or `abandon()`. */
export type HeldClaim = LeaseClaim | TransactionClaim;

export type BeginOutcome = Exclude<ClaimOutcome, { status: 'claimed' }> | { status: 'claimed'; claim: HeldClaim };

/** A held claim before its outcomes are reported: `release()` says whether the claim was still held. */
export type UnreportedClaim = DistributiveOmit<HeldClaim, 'release' | 'abandon'> & {
  release(): Promise<boolean>;
  abandon(): void;
};

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The in-process identity of a record: its scope and key. */
export function recordId(ref: { scope: string; key: string }): string {
  return `${ref.scope}\u0000${ref.key}`;
}
