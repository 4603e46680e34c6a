import { type ClaimDecision, type ClaimedRecord, decide } from '../../claim/claim-state';
import type { ClaimOutcome, ClaimRequest, RecordState, StoredResponse } from '../idempotency-store';

/** The outcomes a peek can have: never a claim. */
export type PeekOutcome = Exclude<ClaimOutcome, { status: 'claimed' | 'in-flight' }>;

/** The stored response of a record, as its columns come back. */
export interface ResponseColumns {
  response_status: number | null;
  response_headers: Array<[string, string]> | null;
  response_body: Uint8Array | null;
}

/** What a claim reads of a record: its times as ms from now on the database clock, never below 0. */
export interface ClaimRow extends ResponseColumns {
  state: RecordState;
  fingerprint: string | null;
  /** 0 once expired: `expires_at <= clock_timestamp()`. */
  expires_in_ms: number;
  /** 0 once the lease ran out; `null` on a completed record. */
  lease_remaining_ms: number | null;
}

/**
 * The columns of {@link ClaimRow}. GREATEST(0, …) reaches 0 exactly when the time has come, so that
 * `decide()` at now = 0 finds expired what `expires_at <= clock_timestamp()` would.
 */
export const CLAIM_COLUMNS = `
  state, fingerprint,
  GREATEST(0, EXTRACT(EPOCH FROM lease_expires_at - clock_timestamp()) * 1000)::float8 AS lease_remaining_ms,
  GREATEST(0, EXTRACT(EPOCH FROM expires_at - clock_timestamp()) * 1000)::float8 AS expires_in_ms,
  response_status, response_headers, response_body`;

/** The moment a claim decides at: the row's times are relative to it. */
export const NOW = 0;

/** The row as `decide()` reads a record, on a clock whose now is {@link NOW}. */
export function claimedRecord(row: ClaimRow): ClaimedRecord {
  return { state: row.state, fingerprint: row.fingerprint, expiresAt: row.expires_in_ms, leaseExpiresAt: row.lease_remaining_ms };
}

/** A decision that leaves the record as it is (see `claims()`). */
export type Answer = Exclude<ClaimDecision, 'start' | 'start-over' | 'take-over'>;

/** The outcome of a decision that leaves the record as it is. */
export function answer(row: ClaimRow, decision: Answer): Exclude<ClaimOutcome, { status: 'claimed' }> {
  switch (decision) {
    case 'replay':
      return replay(row);
    case 'mismatch':
      return { status: 'fingerprint-mismatch' };
    case 'in-flight':
      return { status: 'in-flight', retryAfterMs: row.lease_remaining_ms ?? 0 };
  }
}

export function replay(row: ClaimRow): Extract<ClaimOutcome, { status: 'completed' }> {
  return { status: 'completed', response: toResponse(row), record: { fingerprint: row.fingerprint, expiresInMs: row.expires_in_ms } };
}

export function toResponse(row: ResponseColumns): StoredResponse {
  return {
    status: row.response_status ?? 200,
    headers: row.response_headers ?? [],
    body: asBuffer(row.response_body),
  };
}

/** node-postgres reads bytea as a Buffer, PGlite as a plain Uint8Array: the same bytes, without a copy. */
function asBuffer(bytes: Uint8Array | null): Buffer {
  if (!bytes) return Buffer.alloc(0);
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** What a peek (a read without a claim) tells of a record: its answer to replay, a mismatch, or nothing to say. */
export function peeked(row: ClaimRow, request: ClaimRequest): PeekOutcome | undefined {
  switch (decide(claimedRecord(row), request, NOW)) {
    case 'replay':
      return replay(row);
    case 'mismatch':
      return { status: 'fingerprint-mismatch' };
    default:
      return undefined;
  }
}
