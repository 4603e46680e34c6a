import type { QueryRunnerLike } from '../typeorm-like';
import { claims, decide } from '../../claim/claim-state';
import type { ClaimOutcome, ClaimRequest } from '../idempotency-store';
import { answer, CLAIM_COLUMNS, type ClaimRow, claimedRecord, NOW } from './claim-row';
import { type ClaimIsolation, milliseconds, msFromNow, type PostgresSession } from './postgres-session';
import { claimParams, NEW_RECORD, type OwnerStatements, ownerStatements, purgeSql } from './record-statements';
import type { ClaimOnTransaction, RecordsTable } from './records-table';
import { SQL_STATE, sqlState } from './sql-state';

type FastClaimRow = { inserted: boolean } & (ClaimRow | { [column in keyof ClaimRow]: null });

/** The transaction a claim in transaction mode opens with its first statement, and that statement's settings ($7, $8). */
interface TransactionOpening {
  runner: QueryRunnerLike;
  isolation: ClaimIsolation;
  settings: string[];
}

/**
 * `idempotency_records`, whose primary key is (scope, key). A claim:
 * 1. Fast path, one statement: insert the row if absent, else read it. A new row is a claim; a completed row
 *    is a replay (completed rows are immutable, so no lock is needed); a live in-flight row is busy. Only what
 *    must change an existing row goes on to step 2.
 * 2. Locked path, in a transaction: insert the row if absent, `SELECT ... FOR UPDATE` it, decide, update.
 *    Expired records start over; in-flight records whose lease ran out are taken over by a new owner.
 */
export class PlainRecordsTable implements RecordsTable {
  readonly owned: OwnerStatements;
  /**
   * The step-1 statement, in autocommit and in a transaction: built once, so that every claim (a replay is one)
   * sends the same string, which its statement name is looked up by and node-postgres compares it with.
   */
  private readonly insertOrReadText: { plain: string; withSettings: string };

  constructor(
    private readonly session: PostgresSession,
    readonly name: string,
  ) {
    this.owned = ownerStatements(name, { liveOnly: false });
    this.insertOrReadText = { plain: this.insertOrReadSql(false), withSettings: this.insertOrReadSql(true) };
  }

  async claim(request: ClaimRequest, owner: string): Promise<ClaimOutcome> {
    const found = this.answerFast(await this.insertOrRead(request, owner), request, owner);
    return found ?? this.session.transaction((runner) => this.lockedClaim(runner, request, owner), request.deadline);
  }

  async claimOnTransaction(
    runner: QueryRunnerLike,
    isolation: ClaimIsolation,
    request: ClaimRequest,
    owner: string,
    deadline: number,
    idleTimeoutMs: number,
  ): Promise<ClaimOnTransaction> {
    // This claim waits on a concurrent holder of the row no longer than its deadline; and a handler stuck
    // inside the transaction for idleTimeoutMs loses its session, which frees the row and the connection.
    const lockTimeoutMs = deadline - Date.now();
    const row = await this.insertOrRead(request, owner, { runner, isolation, settings: [milliseconds(lockTimeoutMs), milliseconds(idleTimeoutMs)] });
    const found = this.answerFast(row, request, owner);
    if (found) return { outcome: found, lockTimeoutMs };
    const outcome = await this.lockedClaim(runner, request, owner, deadline);
    // The locked path lowers lock_timeout to what is left of the wait as it goes.
    return { outcome, lockTimeoutMs: deadline - Date.now() };
  }

  async purge(batchSize: number): Promise<number> {
    const expired = purgeSql(this.name, `AND (state = 'completed' OR lease_expires_at IS NULL OR lease_expires_at <= now())`);
    return (await this.session.send(expired, [batchSize], { prepared: false })).count;
  }

  withRoom<T>(claim: () => Promise<T>): Promise<T> {
    return claim();
  }

  /**
   * Step 1: insert the row if absent, else read it, in one statement: in autocommit, or as the first statement of
   * a transaction that it opens (`opening`). `undefined`, or a row without a state, when the answer needs the locked
   * path: the row was committed after this statement's snapshot (under a stricter default isolation than READ
   * COMMITTED, PostgreSQL says so with a serialization failure).
   */
  private async insertOrRead(request: ClaimRequest, owner: string, opening?: TransactionOpening): Promise<FastClaimRow | undefined> {
    try {
      const params = claimParams(request, owner);
      const { rows } = opening
        ? await this.session.beginWith<FastClaimRow>(opening.runner, opening.isolation, this.insertOrReadText.withSettings, [...params, ...opening.settings])
        : await this.session.send<FastClaimRow>(this.insertOrReadText.plain, params, { deadline: request.deadline });
      return rows[0];
    } catch (error) {
      if (sqlState(error) === SQL_STATE.serializationFailure) return undefined;
      throw error;
    }
  }

  /**
   * In a transaction (`withSettings`) the statement first sets the transaction's lock_timeout ($7) and idle
   * timeout ($8): set_config in the insert's source runs before the insert can wait on a concurrent holder
   * of the key, and saves the claim a round trip.
   */
  private insertOrReadSql(withSettings: boolean): string {
    const settings = withSettings
      ? `FROM (SELECT set_config('lock_timeout', $7, true), set_config('idle_in_transaction_session_timeout', $8, true)) AS settings`
      : '';
    return `WITH inserted AS (
        INSERT INTO ${this.name} ${NEW_RECORD.columns}
        SELECT ${NEW_RECORD.values} ${settings}
        ON CONFLICT (scope, key) DO NOTHING
        RETURNING 1
      )
      SELECT EXISTS (SELECT 1 FROM inserted) AS inserted, existing.*
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (
        SELECT ${CLAIM_COLUMNS} FROM ${this.name}
        WHERE scope = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM inserted)
      ) AS existing ON true`;
  }

  /** The outcome of step 1 where it needs no step 2: a new row, or a record the claim leaves as it is. */
  private answerFast(row: FastClaimRow | undefined, request: ClaimRequest, owner: string): ClaimOutcome | undefined {
    if (row?.inserted) return { status: 'claimed', ref: { scope: request.scope, key: request.key, owner }, attempt: 1, takenOver: false };
    if (!row || row.state === null) return undefined;
    const decision = decide(claimedRecord(row), request, NOW);
    return claims(decision) ? undefined : answer(row, decision);
  }

  /** Step 2, on an open transaction: insert if absent, lock, decide, update. */
  private async lockedClaim(runner: QueryRunnerLike, request: ClaimRequest, owner: string, deadline?: number): Promise<ClaimOutcome> {
    const ref = { scope: request.scope, key: request.key, owner };
    const params = claimParams(request, owner);
    const budget = new LockBudget(this.session, runner, deadline);
    for (;;) {
      await budget.renew();
      const inserted = await this.session.send(
        `INSERT INTO ${this.name} ${NEW_RECORD.columns} VALUES (${NEW_RECORD.values}) ON CONFLICT (scope, key) DO NOTHING RETURNING 1`,
        params,
        { runner },
      );
      if (inserted.rows.length === 1) return { status: 'claimed', ref, attempt: 1, takenOver: false };

      await budget.renew();
      const {
        rows: [row],
      } = await this.session.send<ClaimRow>(
        `SELECT ${CLAIM_COLUMNS} FROM ${this.name} WHERE scope = $1 AND key = $2 FOR UPDATE`,
        [request.scope, request.key],
        {
          runner,
        },
      );
      // Deleted (released or purged) between the insert and the lock: insert again.
      if (!row) continue;

      const decision = decide(claimedRecord(row), request, NOW);
      if (!claims(decision)) return answer(row, decision);

      const startOver = decision !== 'take-over';
      const {
        rows: [updated],
      } = await this.session.send<{ attempts: number }>(
        `UPDATE ${this.name} SET
           state = 'in_flight', owner = $3, fingerprint = $4,
           attempts = CASE WHEN $7 THEN 1 ELSE attempts + 1 END,
           created_at = CASE WHEN $7 THEN clock_timestamp() ELSE created_at END,
           lease_expires_at = ${msFromNow('$5')}, expires_at = ${msFromNow('$6')},
           response_status = NULL, response_headers = NULL, response_body = NULL, completed_at = NULL
         WHERE scope = $1 AND key = $2
         RETURNING attempts`,
        [...params, startOver],
        { runner },
      );
      return { status: 'claimed', ref, attempt: updated.attempts, takenOver: !startOver };
    }
  }
}

/**
 * lock_timeout bounds each statement of the locked path; a claim that waited in one statement has less left
 * for the next. Renewed only once some time has passed (a round trip), and never past the deadline.
 */
class LockBudget {
  private setAt = Date.now();

  constructor(
    private readonly session: PostgresSession,
    private readonly runner: QueryRunnerLike,
    private readonly deadline: number | undefined,
  ) {}

  async renew(): Promise<void> {
    if (this.deadline === undefined || Date.now() - this.setAt < 20) return;
    if (this.deadline <= Date.now()) throw Object.assign(new Error('waitTimeout ran out'), { code: SQL_STATE.lockNotAvailable });
    await this.session.send(`SELECT set_config('lock_timeout', $1, true)`, [milliseconds(this.deadline - Date.now())], { runner: this.runner });
    this.setAt = Date.now();
  }
}
