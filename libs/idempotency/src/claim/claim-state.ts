/**
 * The states of an idempotency record and every rule of a claim, written once. Each store (the SQL of
 * PostgreSQL, the Lua of Redis) implements these rules; the table-driven spec in `testing/` holds each
 * store to {@link CLAIM_TRANSITIONS}.
 *
 * ```text
 *            claim                 complete(owner)
 *  absent ────────────▶ in flight ─────────────────▶ completed
 *    ▲                  │  ▲   │                        │
 *    │ release(owner)   │  │   │ lease runs out         │ ttl runs out
 *    └──────────────────┘  │   ▼                        ▼
 *                          └─ lease expired          expired ── claim ──▶ in flight (attempt 1)
 *                  claim: take-over (attempt + 1, new owner)
 * ```
 *
 * - An expired record counts as absent: a claim starts over.
 * - A live record whose fingerprint differs from the request's is a mismatch, in flight or completed;
 *   a `null` fingerprint on either side matches any.
 * - A completed record is replayed as is; it does not change until it expires.
 * - An in-flight record whose lease ran out is taken over by the next claim, with a new owner token.
 * - `complete`, `release` and `renew` act only for the owner of an in-flight record (fencing): a late
 *   first attempt never overwrites a newer one. (The partitioned table also leaves an expired record alone.)
 */

/** What a record is, as stored. */
export type RecordState = 'in_flight' | 'completed';

/**
 * What a claim reads of an existing record. Times are on the store's clock, in ms, and need only be
 * comparable with the `now` given to {@link decide}: a store may give them relative to now (now = 0).
 */
export interface ClaimedRecord {
  state: RecordState;
  fingerprint: string | null;
  expiresAt: number;
  /** When the lease of an in-flight record runs out; `null` on a completed record. */
  leaseExpiresAt: number | null;
}

/**
 * What a claim does with what it found:
 * - `start`: no record; insert one, in flight, attempt 1.
 * - `start-over`: the record expired; replace it, in flight, attempt 1.
 * - `take-over`: an in-flight record whose lease ran out; it gets a new owner and attempt + 1.
 * - `replay`: a live completed record; answer with its response.
 * - `in-flight`: a live in-flight record; answer busy, for as long as its lease has left.
 * - `mismatch`: a live record of another request; answer 422.
 */
export type ClaimDecision = 'start' | 'start-over' | 'take-over' | 'replay' | 'in-flight' | 'mismatch';

/** Whether two fingerprints belong to different requests; `null` (the check turned off) matches any. */
export function fingerprintsDiffer(stored: string | null, requested: string | null): boolean {
  return stored !== null && requested !== null && stored !== requested;
}

/** The rule of a claim: what to do with `record` (`undefined`: none) for a request, at `now`. */
export function decide(record: ClaimedRecord | undefined, request: { fingerprint: string | null }, now: number): ClaimDecision {
  if (!record) return 'start';
  if (record.expiresAt <= now) return 'start-over';
  if (fingerprintsDiffer(record.fingerprint, request.fingerprint)) return 'mismatch';
  if (record.state === 'completed') return 'replay';
  return record.leaseExpiresAt !== null && record.leaseExpiresAt <= now ? 'take-over' : 'in-flight';
}

/** Whether a decision changes the record (and so takes the claim), or only answers from it. */
export function claims(decision: ClaimDecision): decision is 'start' | 'start-over' | 'take-over' {
  return decision === 'start' || decision === 'start-over' || decision === 'take-over';
}

/** A record as a test sets it up before a claim: the rows of {@link CLAIM_TRANSITIONS}. */
export type FoundRecord = 'absent' | 'in-flight' | 'lease-expired' | 'completed' | 'expired';

/** The fingerprint of the claim against the record's: the same, another one, or none (`null`). */
export type RequestFingerprint = 'same' | 'other' | 'none';

/** What the claim answers, and what becomes of the record. */
export interface ClaimTransition {
  found: FoundRecord;
  fingerprint: RequestFingerprint;
  decision: ClaimDecision;
  /** The status of the store's `ClaimOutcome`. */
  outcome: 'claimed' | 'completed' | 'in-flight' | 'fingerprint-mismatch';
  /** The attempt of the new claim: 1, or the previous attempt + 1 after a takeover. */
  attempt?: 'first' | 'next';
}

/**
 * Every claim transition. The found record's own fingerprint is set (`'fp-1'`); `same`, `other` and `none`
 * are the claim's. An expired or absent record has nothing to mismatch with.
 */
export const CLAIM_TRANSITIONS: readonly ClaimTransition[] = [
  { found: 'absent', fingerprint: 'same', decision: 'start', outcome: 'claimed', attempt: 'first' },
  { found: 'absent', fingerprint: 'none', decision: 'start', outcome: 'claimed', attempt: 'first' },
  { found: 'in-flight', fingerprint: 'same', decision: 'in-flight', outcome: 'in-flight' },
  { found: 'in-flight', fingerprint: 'none', decision: 'in-flight', outcome: 'in-flight' },
  { found: 'in-flight', fingerprint: 'other', decision: 'mismatch', outcome: 'fingerprint-mismatch' },
  { found: 'lease-expired', fingerprint: 'same', decision: 'take-over', outcome: 'claimed', attempt: 'next' },
  { found: 'lease-expired', fingerprint: 'none', decision: 'take-over', outcome: 'claimed', attempt: 'next' },
  { found: 'lease-expired', fingerprint: 'other', decision: 'mismatch', outcome: 'fingerprint-mismatch' },
  { found: 'completed', fingerprint: 'same', decision: 'replay', outcome: 'completed' },
  { found: 'completed', fingerprint: 'none', decision: 'replay', outcome: 'completed' },
  { found: 'completed', fingerprint: 'other', decision: 'mismatch', outcome: 'fingerprint-mismatch' },
  { found: 'expired', fingerprint: 'same', decision: 'start-over', outcome: 'claimed', attempt: 'first' },
  { found: 'expired', fingerprint: 'other', decision: 'start-over', outcome: 'claimed', attempt: 'first' },
  { found: 'expired', fingerprint: 'none', decision: 'start-over', outcome: 'claimed', attempt: 'first' },
];
