import type { ClaimRef, ClaimRequest, StoredResponse } from '../idempotency-store';
import { msFromNow } from './postgres-session';

/**
 * The statements both tables of records share. A claim's parameters are always {@link claimParams}:
 * $1 scope, $2 key, $3 owner, $4 fingerprint, $5 lease (ms), $6 ttl (ms).
 */

/** The columns a claim inserts, and their values from {@link claimParams}: a new record, in flight. */
export const NEW_RECORD = {
  columns: '(scope, key, state, fingerprint, owner, lease_expires_at, expires_at)',
  values: `$1::text, $2::text, 'in_flight', $4::text, $3::uuid, ${msFromNow('$5')}, ${msFromNow('$6')}`,
} as const;

export function claimParams(request: ClaimRequest, owner: string): unknown[] {
  // The lease may outlast the TTL; the row must not expire before its lease does.
  return [request.scope, request.key, owner, request.fingerprint, request.leaseMs, Math.max(request.ttlMs, request.leaseMs)];
}

/** Complete, release and renew: each one statement, fenced on the owner of a record in flight. */
export interface OwnerStatements {
  /** Parameters: the ref's scope, key and owner, then {@link completeParams}. */
  complete: string;
  /**
   * `complete` that fails (division by zero: `SQL_STATE.recordNotCompleted`) unless it completed exactly one
   * record: sent together with COMMIT, it keeps the server from committing a handler whose record is not its own
   * any more. Same parameters.
   */
  completeOrFail: string;
  /** Parameters: the ref's scope, key and owner. */
  release: string;
  /** Parameters: the ref's scope, key and owner, then the lease (ms). */
  renew: string;
}

/**
 * The statements fenced on the owner. `liveOnly`: completion and renewal leave an expired record alone (the
 * partitioned table drops a partition once all its records expired: none may become live again).
 */
export function ownerStatements(table: string, options: { liveOnly: boolean }): OwnerStatements {
  const fence = `scope = $1 AND key = $2 AND owner = $3 AND state = 'in_flight'`;
  const live = options.liveOnly ? ' AND expires_at > clock_timestamp()' : '';
  const complete = `UPDATE ${table} SET
        state = 'completed', response_status = $4, response_headers = $5::jsonb, response_body = $6,
        completed_at = clock_timestamp(), expires_at = ${msFromNow('$7')}, lease_expires_at = NULL
      WHERE ${fence}${live}`;
  return {
    complete,
    completeOrFail: `WITH done AS (${complete} RETURNING 1) SELECT 1 / (count(*) = 1)::int AS completed FROM done`,
    release: `DELETE FROM ${table} WHERE ${fence}`,
    renew: `UPDATE ${table}
      SET lease_expires_at = ${msFromNow('$4')}, expires_at = GREATEST(expires_at, ${msFromNow('$4')})
      WHERE ${fence}${live}`,
  };
}

export function completeParams(ref: ClaimRef, response: StoredResponse, ttlMs: number): unknown[] {
  return [ref.scope, ref.key, ref.owner, response.status, JSON.stringify(response.headers), response.body, ttlMs];
}

/**
 * One purge batch ($1 rows at most): a single statement, so its row locks last as long as it runs. `SKIP
 * LOCKED`: it never waits on (or blocks) a row that a claim is deciding on. `now()`, the statement's start in
 * autocommit, and not `clock_timestamp()`: a stable bound is an index condition, so the scan stops at the first
 * live row; rows that expire meanwhile wait for the next batch. Rows are deleted by `ctid`, as locked: no second
 * lookup through the primary key. Send it unprepared: a generic plan made while the table was small filters a
 * sequential scan of the whole table.
 */
export function purgeSql(table: string, condition = ''): string {
  return `DELETE FROM ${table} WHERE ctid = ANY (ARRAY(
      SELECT ctid FROM ${table} WHERE expires_at <= now() ${condition}
      ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED))`;
}
