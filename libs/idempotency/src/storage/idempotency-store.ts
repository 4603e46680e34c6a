import type { EntityManagerLike } from './typeorm-like';

/** Injection token of the {@link IdempotencyStore} the module uses. */
export const IDEMPOTENCY_STORE = Symbol('IDEMPOTENCY_STORE');

/** A response as it was first sent: replayed byte for byte. */
export interface StoredResponse {
  status: number;
  /** Allow-listed headers, lower-case names, in the order they were sent. */
  headers: Array<[name: string, value: string]>;
  body: Buffer;
}

/** Identifies one claim: the record and the owner token that fences its completion or release. */
export interface ClaimRef {
  scope: string;
  key: string;
  owner: string;
}

export interface ClaimRequest {
  scope: string;
  key: string;
  /** Hash of the request; `null` turns the reuse check off. */
  fingerprint: string | null;
  leaseMs: number;
  ttlMs: number;
  /**
   * When the caller stops waiting (`Date.now()` ms): a claim that has not started by then should not start
   * (the request was answered 503). The PostgreSQL stores check it once they have a pooled connection; a
   * store may ignore it, and the caller gives back a claim that lands after it.
   */
  deadline?: number;
}

/** What a claim attempt found, decided under the row lock. */
export type ClaimOutcome =
  | { status: 'claimed'; ref: ClaimRef; attempt: number; takenOver: boolean }
  | { status: 'completed'; response: StoredResponse; record?: CompletedRecord }
  | { status: 'in-flight'; retryAfterMs: number }
  | { status: 'fingerprint-mismatch' };

/** What lets a replay be answered again without the store: the record stays as it is until it expires. */
export interface CompletedRecord {
  fingerprint: string | null;
  /** Time left before the record expires, on the store's clock. */
  expiresInMs: number;
}

export type VersionOutcome = 'applied' | 'stale' | 'busy';

/** A claim made inside an open transaction that stays open until `complete()` or `rollback()`. */
export interface TransactionalClaim {
  ref: ClaimRef;
  /** The claim's transaction: business writes made through it commit with the stored response. */
  manager: EntityManagerLike;
  /**
   * Stores the response and commits everything; throws if the commit fails (nothing was written), and
   * `TransactionAbortedError` (after rolling back) when a statement of the handler failed in the transaction.
   */
  complete(response: StoredResponse, ttlMs: number): Promise<void>;
  /** Rolls back the claim and every write made through `manager`. */
  rollback(): Promise<void>;
  /**
   * Needed by routes with `order`. Records `version` (a decimal number) as the newest applied to `resource` in the claim's scope, unless
   * a newer one is recorded (`stale`: nothing changes). Waits for a concurrent transaction on the same
   * resource, so that events for one resource apply one at a time; `busy` when that wait ran out.
   */
  advanceVersion?(resource: string, version: string, ttlMs: number): Promise<VersionOutcome>;
}

export type TransactionalClaimOutcome =
  Exclude<ClaimOutcome, { status: 'claimed' }> | { status: 'claimed'; claim: TransactionalClaim; attempt: number; takenOver: boolean };

export type RecordState = 'in_flight' | 'completed';

/** A record as `find()` shows it, for inspection and for callers outside HTTP. */
export interface IdempotencyRecordView {
  scope: string;
  key: string;
  state: RecordState;
  fingerprint: string | null;
  attempts: number;
  owner: string | null;
  createdAt: Date;
  completedAt: Date | null;
  leaseExpiresAt: Date | null;
  expiresAt: Date;
  response: StoredResponse | null;
}

/**
 * Where idempotency records live. Every method is atomic on its own; times come from the store's clock.
 *
 * Guarantees an implementation must keep:
 * - `claim`: at most one caller holds a live claim on (scope, key). A completed record is returned as is
 *   while it has not expired; an expired record counts as absent; an in-flight record whose lease ran
 *   out is taken over (with a new owner token). A different fingerprint on a live record is a mismatch.
 * - `complete` and `release` change the record only while `ref.owner` still holds it, so a late first
 *   attempt never overwrites a newer one; they return whether they did.
 * - Completed records are immutable until they expire.
 *
 * @example
 * const outcome = await store.claim({ scope: 'jobs', key: 'job-1', fingerprint: null, leaseMs: 30_000, ttlMs: 86_400_000 });
 * if (outcome.status === 'claimed') await store.complete(outcome.ref, { status: 200, headers: [], body }, 86_400_000);
 */
export interface IdempotencyStore {
  /** Declares that the store holds claims in database transactions (`TransactionalIdempotencyStore`). */
  readonly transactional?: boolean;
  /** Claims (scope, key) for `request.leaseMs`, or says why not. */
  claim(request: ClaimRequest): Promise<ClaimOutcome>;
  /**
   * The answer to a request that needs no claim, read without a lock: the replay of a live completed
   * record, or the fingerprint mismatch with it. `undefined` when a claim must decide.
   */
  peek(request: ClaimRequest): Promise<Exclude<ClaimOutcome, { status: 'claimed' | 'in-flight' }> | undefined>;
  /** Stores the response and marks the record completed for `ttlMs`; false if the claim was lost. */
  complete(ref: ClaimRef, response: StoredResponse, ttlMs: number): Promise<boolean>;
  /** Deletes the in-flight record so that the next attempt runs again; false if the claim was lost. */
  release(ref: ClaimRef): Promise<boolean>;
  /** Extends the lease of a live claim by `leaseMs` from now; false if the claim was lost. */
  renew(ref: ClaimRef, leaseMs: number): Promise<boolean>;
  /** The live record of (scope, key), or `undefined` if there is none or it expired. */
  find(scope: string, key: string): Promise<IdempotencyRecordView | undefined>;
  /** Deletes up to `batchSize` expired records; returns how many it deleted. */
  purgeExpired(batchSize: number): Promise<number>;
}

/** A store that can also hold a claim inside a database transaction (`transaction: true`). */
export interface TransactionalIdempotencyStore extends IdempotencyStore {
  readonly transactional: true;
  /** The store's manager outside any claim: what a transactional route gets when it runs without a key. */
  readonly manager: EntityManagerLike;
  /**
   * Opens a transaction and claims (scope, key) in it, waiting at most `lockTimeoutMs` for a
   * concurrent holder of the row. A transaction left idle for `idleTimeoutMs` (a stuck handler) is
   * ended by the database. Each lock wait of the statements that follow the claim is bounded by
   * `handlerLockTimeoutMs` (default `lockTimeoutMs`). Unless the outcome is `claimed`, the transaction
   * is already closed.
   */
  claimInTransaction(request: ClaimRequest, lockTimeoutMs: number, idleTimeoutMs: number, handlerLockTimeoutMs?: number): Promise<TransactionalClaimOutcome>;
}

/** Whether the store declares transactional claims (`transaction: true`, `order`, `runJob()`). */
export function isTransactional(store: IdempotencyStore): store is TransactionalIdempotencyStore {
  return store.transactional === true;
}
