import { createHash } from 'node:crypto';
import { claims, decide } from '../../claim/claim-state';
import type { ClaimOutcome, ClaimRef, ClaimRequest, IdempotencyRecordView, StoredResponse } from '../idempotency-store';
import { answer, type ClaimRow, claimedRecord, NOW } from '../postgres/claim-row';
import { type RecordViewRow, toView } from '../postgres/record-view';
import { asNumber, CLOCK, epochMs, MS_FROM_NOW, msUntil, STATEMENT_START } from './mysql-clock';
import type { QueryRunnerLike } from '../typeorm-like';
import type { MySqlSession } from './mysql-session';

export const MYSQL_RECORDS_TABLE = '`idempotency_records`';

/**
 * The primary key of a record: sha-256 of (scope, key) as a JSON array, which no two pairs share. InnoDB keys
 * are at most 3072 bytes and a scope has no bound; and a key compared as bytes never meets another that a
 * case- or accent-insensitive collation would call equal.
 */
export function recordId(scope: string, key: string): Buffer {
  return createHash('sha256')
    .update(JSON.stringify([scope, key]))
    .digest();
}

/** A claim's record as the SELECT reads it: times as ms from now (DECIMAL, so strings), headers as JSON text. */
interface MySqlClaimRow {
  state: ClaimRow['state'];
  fingerprint: string | null;
  attempts: number;
  lease_remaining_ms: string | null;
  expires_in_ms: string;
  response_status: number | null;
  response_headers: string | null;
  response_body: Buffer | null;
}

const CLAIM_COLUMNS = `state, fingerprint, attempts,
  ${msUntil('lease_expires_at')} AS lease_remaining_ms, ${msUntil('expires_at')} AS expires_in_ms,
  response_status, response_headers, response_body`;

/** The row as the PostgreSQL stores give it, so that one mapping (`claim-row.ts`) serves both. */
function toClaimRow(row: MySqlClaimRow): ClaimRow & { attempts: number } {
  return {
    state: row.state,
    fingerprint: row.fingerprint,
    attempts: row.attempts,
    lease_remaining_ms: asNumber(row.lease_remaining_ms),
    expires_in_ms: Number(row.expires_in_ms),
    response_status: row.response_status,
    response_headers: row.response_headers === null ? null : (JSON.parse(row.response_headers) as Array<[string, string]>),
    response_body: row.response_body,
  };
}

/**
 * Inserts the record in flight, or, where (scope, key) exists, locks its row (an exclusive lock, as an update
 * takes) and leaves it as it is. `LAST_INSERT_ID(attempts)` tells the two apart in the same round trip: the
 * insert id is 0 for a new row, the existing row's attempts (at least 1) otherwise.
 * Parameters: id, scope, key, fingerprint, owner, lease ms, TTL ms.
 */
const INSERT_OR_LOCK = `INSERT INTO ${MYSQL_RECORDS_TABLE} (id, scope, \`key\`, state, fingerprint, owner, lease_expires_at, expires_at, created_at)
  VALUES (?, ?, ?, 'in_flight', ?, ?, ${MS_FROM_NOW}, ${MS_FROM_NOW}, ${CLOCK})
  ON DUPLICATE KEY UPDATE attempts = LAST_INSERT_ID(attempts)`;

/** Parameters: owner, fingerprint, start over (twice), lease ms, TTL ms, id. */
const TAKE = `UPDATE ${MYSQL_RECORDS_TABLE} SET
    state = 'in_flight', owner = ?, fingerprint = ?,
    attempts = IF(?, 1, attempts + 1), created_at = IF(?, ${CLOCK}, created_at),
    lease_expires_at = ${MS_FROM_NOW}, expires_at = ${MS_FROM_NOW},
    response_status = NULL, response_headers = NULL, response_body = NULL, completed_at = NULL
  WHERE id = ?`;

const OWNED = `id = ? AND owner = ? AND state = 'in_flight'`;

/** Parameters: status, headers (JSON), body, TTL ms, id, owner. */
const COMPLETE = `UPDATE ${MYSQL_RECORDS_TABLE} SET
    state = 'completed', response_status = ?, response_headers = ?, response_body = ?,
    completed_at = ${CLOCK}, expires_at = ${MS_FROM_NOW}, lease_expires_at = NULL
  WHERE ${OWNED}`;

/** Parameters: lease ms (twice), id, owner. */
const RENEW = `UPDATE ${MYSQL_RECORDS_TABLE} SET lease_expires_at = ${MS_FROM_NOW}, expires_at = GREATEST(expires_at, ${MS_FROM_NOW}) WHERE ${OWNED}`;

const RELEASE = `DELETE FROM ${MYSQL_RECORDS_TABLE} WHERE ${OWNED}`;

const VIEW = `SELECT scope, \`key\`, state, fingerprint, attempts, owner,
    ${epochMs('created_at')} AS created_ms, ${epochMs('completed_at')} AS completed_ms,
    ${epochMs('lease_expires_at')} AS lease_ms, ${epochMs('expires_at')} AS expires_ms,
    response_status, response_headers, response_body
  FROM ${MYSQL_RECORDS_TABLE} WHERE id = ? AND expires_at > ${CLOCK}`;

/** Expired records, and in-flight ones whose lease ran out too; on the statement's start, so that the index bounds the scan. */
export const PURGEABLE_RECORDS = `expires_at <= ${STATEMENT_START} AND (state = 'completed' OR lease_expires_at IS NULL OR lease_expires_at <= ${STATEMENT_START})`;

/**
 * The records table and the statements on it. A claim:
 * 1. Fast path, autocommit: insert-or-lock ({@link INSERT_OR_LOCK}). A new row is a claim; otherwise the record
 *    is read (no lock: completed rows are immutable), and a replay, a mismatch or a live in-flight row is answered.
 * 2. Locked path, in a transaction: insert-or-lock, read under the lock, decide, update. Expired records start
 *    over; in-flight records whose lease ran out are taken over by a new owner.
 */
export class MySqlRecords {
  constructor(private readonly session: MySqlSession) {}

  /** Step 1, or the answer `undefined` when step 2 must decide (or the row went away meanwhile: try again). */
  async fastClaim(request: ClaimRequest, owner: string, lockWaitMs: number | undefined): Promise<ClaimOutcome | 'locked-path' | 'again'> {
    const id = recordId(request.scope, request.key);
    const { insertId } = await this.session.send(INSERT_OR_LOCK, insertParams(id, request, owner), { deadline: request.deadline, lockWaitMs });
    if (insertId === 0) return claimed(request, owner, 1, false);
    const row = await this.read(id);
    if (!row) return 'again';
    const decision = decide(claimedRecord(row), request, NOW);
    return claims(decision) ? 'locked-path' : answer(row, decision);
  }

  /** Step 2 on `runner`'s open transaction; the row's lock is held to its end. */
  async lockedClaim(runner: QueryRunnerLike, request: ClaimRequest, owner: string, lockWaitMs: number | undefined): Promise<ClaimOutcome> {
    const id = recordId(request.scope, request.key);
    for (;;) {
      const { insertId } = await this.session.send(INSERT_OR_LOCK, insertParams(id, request, owner), { runner, lockWaitMs });
      if (insertId === 0) return claimed(request, owner, 1, false);
      const row = await this.read(id, runner);
      // Locked by this transaction, it cannot go away; read anyway as a claim would start over.
      if (!row) continue;
      const decision = decide(claimedRecord(row), request, NOW);
      if (!claims(decision)) return answer(row, decision);
      const startOver = decision !== 'take-over';
      const { scope, key, fingerprint, leaseMs } = request;
      await this.session.send(TAKE, [owner, fingerprint, startOver, startOver, leaseMs, ttlOf(request), id], { runner });
      return claimed({ scope, key }, owner, startOver ? 1 : row.attempts + 1, !startOver);
    }
  }

  async read(id: Buffer, runner?: QueryRunnerLike): Promise<(ClaimRow & { attempts: number }) | undefined> {
    const { rows } = await this.session.send<MySqlClaimRow>(`SELECT ${CLAIM_COLUMNS} FROM ${MYSQL_RECORDS_TABLE} WHERE id = ?`, [id], { runner });
    return rows[0] && toClaimRow(rows[0]);
  }

  async complete(ref: ClaimRef, response: StoredResponse, ttlMs: number, runner?: QueryRunnerLike): Promise<boolean> {
    const params = [response.status, JSON.stringify(response.headers), response.body, ttlMs, recordId(ref.scope, ref.key), ref.owner];
    return (await this.session.send(COMPLETE, params, { runner })).affected === 1;
  }

  async release(ref: ClaimRef): Promise<boolean> {
    return (await this.session.send(RELEASE, [recordId(ref.scope, ref.key), ref.owner])).affected === 1;
  }

  async renew(ref: ClaimRef, leaseMs: number): Promise<boolean> {
    return (await this.session.send(RENEW, [leaseMs, leaseMs, recordId(ref.scope, ref.key), ref.owner])).affected === 1;
  }

  async find(scope: string, key: string): Promise<IdempotencyRecordView | undefined> {
    const { rows } = await this.session.send<ViewRow>(VIEW, [recordId(scope, key)]);
    return rows[0] && toView(toViewRow(rows[0]));
  }
}

interface ViewRow extends Omit<MySqlClaimRow, 'lease_remaining_ms' | 'expires_in_ms'> {
  scope: string;
  key: string;
  owner: string | null;
  created_ms: string;
  completed_ms: string | null;
  lease_ms: string | null;
  expires_ms: string;
}

function toViewRow(row: ViewRow): RecordViewRow {
  const date = (ms: string | null) => (ms === null ? null : new Date(Number(ms)));
  return {
    scope: row.scope,
    key: row.key,
    state: row.state,
    fingerprint: row.fingerprint,
    attempts: row.attempts,
    owner: row.owner,
    createdAt: new Date(Number(row.created_ms)),
    completedAt: date(row.completed_ms),
    leaseExpiresAt: date(row.lease_ms),
    expiresAt: new Date(Number(row.expires_ms)),
    response_status: row.response_status,
    response_headers: row.response_headers === null ? null : (JSON.parse(row.response_headers) as Array<[string, string]>),
    response_body: row.response_body,
  };
}

/** The lease may outlast the TTL; the row must not expire before its lease does. */
function ttlOf(request: ClaimRequest): number {
  return Math.max(request.ttlMs, request.leaseMs);
}

function insertParams(id: Buffer, request: ClaimRequest, owner: string): unknown[] {
  return [id, request.scope, request.key, request.fingerprint, owner, request.leaseMs, ttlOf(request)];
}

function claimed(request: { scope: string; key: string }, owner: string, attempt: number, takenOver: boolean): ClaimOutcome {
  return { status: 'claimed', ref: { scope: request.scope, key: request.key, owner }, attempt, takenOver };
}
