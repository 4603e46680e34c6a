import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager, QueryRunner } from 'typeorm';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IDEMPOTENCY_TABLE } from './idempotency-record.entity';
import { IDEMPOTENCY_VERSIONS_TABLE } from './idempotency-version.entity';
import type {
  ClaimOutcome,
  ClaimRef,
  ClaimRequest,
  IdempotencyRecordView,
  RecordState,
  StoredResponse,
  TransactionalClaim,
  TransactionalClaimOutcome,
  TransactionalIdempotencyStore,
} from './idempotency-store';
import { qualifiedTableName } from './table-name';

/** PostgreSQL's SQLSTATE when `lock_timeout` ran out while waiting for a row. */
const LOCK_NOT_AVAILABLE = '55P03';
const UNDEFINED_TABLE = '42P01';
const SERIALIZATION_FAILURE = '40001';
const UNDEFINED_COLUMN = '42703';

/** How a record found by a claim is answered; decided from the row alone. */
type Decision = 'replay' | 'mismatch' | 'in-flight' | 'take-over' | 'start-over';

/** The columns a claim decides on. Times are compared in SQL, on the database clock. */
interface ClaimRow {
  state: RecordState;
  fingerprint: string | null;
  expired: boolean;
  lease_expired: boolean | null;
  lease_remaining_ms: number | null;
  response_status: number | null;
  response_headers: Array<[string, string]> | null;
  response_body: Buffer | null;
}

interface RecordRow {
  scope: string;
  key: string;
  state: RecordState;
  fingerprint: string | null;
  attempts: number;
  owner: string | null;
  created_at: Date;
  completed_at: Date | null;
  lease_expires_at: Date | null;
  expires_at: Date;
  response_status: number | null;
  response_headers: Array<[string, string]> | null;
  response_body: Buffer | null;
}

const CLAIM_COLUMNS = `
  state, fingerprint,
  expires_at <= clock_timestamp() AS expired,
  lease_expires_at <= clock_timestamp() AS lease_expired,
  GREATEST(0, EXTRACT(EPOCH FROM lease_expires_at - clock_timestamp()) * 1000)::float8 AS lease_remaining_ms,
  response_status, response_headers, response_body`;

/** `$n` milliseconds from now on the database clock (`now()` is frozen at the start of a transaction). */
const msFromNow = (param: string) => `clock_timestamp() + ${param}::float8 * interval '1 millisecond'`;

/**
 * The PostgreSQL store, on the application's TypeORM DataSource (no pool of its own).
 *
 * The claim is the algorithm of the library, and reads as its SQL:
 * 1. Fast path, one statement: insert the (scope, key) row if absent, else read it. A new row is a
 *    claim; a completed row is a replay (completed rows are immutable, so no lock is needed); a live
 *    in-flight row is busy. Only what must change an existing row goes on to step 2.
 * 2. In a transaction: insert the row if absent, `SELECT ... FOR UPDATE` it, decide, update, commit.
 *    Expired records start over; in-flight records whose lease ran out are taken over by a new owner.
 * Completion and release are single statements fenced on the owner token.
 *
 * @example
 * const store = new TypeOrmIdempotencyStore(dataSource);
 * const outcome = await store.claim({ scope: 'POST /orders', key: 'k1', fingerprint: null, leaseMs: 30_000, ttlMs: 86_400_000 });
 */
export class TypeOrmIdempotencyStore implements TransactionalIdempotencyStore {
  private readonly table: string;
  private readonly versions: string;

  constructor(private readonly dataSource: DataSource) {
    this.table = qualifiedTableName(dataSource, IDEMPOTENCY_TABLE);
    this.versions = qualifiedTableName(dataSource, IDEMPOTENCY_VERSIONS_TABLE);
  }

  get manager(): EntityManager {
    return this.dataSource.manager;
  }

  async claim(request: ClaimRequest): Promise<ClaimOutcome> {
    const owner = randomUUID();
    const row = await this.fastClaim(request, owner);
    if (row?.inserted) {
      return { status: 'claimed', ref: { scope: request.scope, key: request.key, owner }, attempt: 1, takenOver: false };
    }
    if (row && row.state !== null) {
      const outcome = answer(row, decide(row, request.fingerprint));
      if (outcome) return outcome;
    }
    return this.inTransaction((runner) => this.lockedClaim(runner, request, owner));
  }

  /**
   * Step 1: insert the row if absent, else read it, in one statement. `undefined`, or a row without a
   * state, when the answer needs the locked path: the row was committed after this statement's snapshot
   * (under a stricter default isolation than READ COMMITTED, PostgreSQL says so with a serialization failure).
   */
  private async fastClaim(request: ClaimRequest, owner: string): Promise<(ClaimRow & { inserted: boolean }) | undefined> {
    try {
      const [row] = await this.query<ClaimRow & { inserted: boolean }>(
        `WITH inserted AS (${this.insertSql()} RETURNING 1)
         SELECT EXISTS (SELECT 1 FROM inserted) AS inserted, existing.*
         FROM (SELECT 1) AS one
         LEFT JOIN LATERAL (
           SELECT ${CLAIM_COLUMNS} FROM ${this.table}
           WHERE scope = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM inserted)
         ) AS existing ON true`,
        this.insertParams(request, owner),
      );
      return row;
    } catch (error) {
      if (sqlState(error) === SERIALIZATION_FAILURE) return undefined;
      throw error;
    }
  }

  async peek(request: ClaimRequest): Promise<Exclude<ClaimOutcome, { status: 'claimed' | 'in-flight' }> | undefined> {
    const [row] = await this.query<ClaimRow>(`SELECT ${CLAIM_COLUMNS} FROM ${this.table} WHERE scope = $1 AND key = $2`, [
      request.scope,
      request.key,
    ]);
    if (!row) return undefined;
    switch (decide(row, request.fingerprint)) {
      case 'replay':
        return { status: 'completed', response: toResponse(row) };
      case 'mismatch':
        return { status: 'fingerprint-mismatch' };
      default:
        return undefined;
    }
  }

  async claimInTransaction(
    request: ClaimRequest,
    lockTimeoutMs: number,
    idleTimeoutMs: number,
    handlerLockTimeoutMs = lockTimeoutMs,
  ): Promise<TransactionalClaimOutcome> {
    const runner = this.dataSource.createQueryRunner();
    const deadline = Date.now() + lockTimeoutMs;
    await runner.connect();
    try {
      await runner.startTransaction('READ COMMITTED');
      // This claim waits on a concurrent holder of the row no longer than lockTimeoutMs; and a handler
      // stuck inside the transaction for idleTimeoutMs loses its session, which frees the row and the connection.
      await runner.query(`SELECT set_config('lock_timeout', $1, true), set_config('idle_in_transaction_session_timeout', $2, true)`, [
        milliseconds(deadline - Date.now()),
        milliseconds(idleTimeoutMs),
      ]);
      const outcome = await this.lockedClaim(runner, request, randomUUID(), deadline);
      if (outcome.status !== 'claimed') {
        await runner.commitTransaction();
        await runner.release();
        return outcome;
      }
      // The claim's lock_timeout is what was left of the wait; the handler's own lock waits get the whole of it
      // again. Only a claim that waited pays this round trip.
      if (handlerLockTimeoutMs - (deadline - Date.now()) > 20) {
        await runner.query(`SELECT set_config('lock_timeout', $1, true)`, [milliseconds(handlerLockTimeoutMs)]);
      }
      return { ...outcome, claim: this.transactionalClaim(runner, outcome.ref) };
    } catch (error) {
      await closeQuietly(runner);
      if (isLockTimeout(error)) return { status: 'in-flight', retryAfterMs: 1000 };
      throw translate(error);
    }
  }

  async complete(ref: ClaimRef, response: StoredResponse, ttlMs: number): Promise<boolean> {
    return (await this.execute(this.completeSql(), this.completeParams(ref, response, ttlMs))) === 1;
  }

  async release(ref: ClaimRef): Promise<boolean> {
    const sql = `DELETE FROM ${this.table} WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'in_flight'`;
    return (await this.execute(sql, [ref.scope, ref.key, ref.owner])) === 1;
  }

  async renew(ref: ClaimRef, leaseMs: number): Promise<boolean> {
    const sql = `UPDATE ${this.table}
      SET lease_expires_at = ${msFromNow('$4')}, expires_at = GREATEST(expires_at, ${msFromNow('$4')})
      WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'in_flight'`;
    return (await this.execute(sql, [ref.scope, ref.key, ref.owner, leaseMs])) === 1;
  }

  async find(scope: string, key: string): Promise<IdempotencyRecordView | undefined> {
    const [row] = await this.query<RecordRow>(
      `SELECT * FROM ${this.table} WHERE scope = $1 AND key = $2 AND expires_at > clock_timestamp()`,
      [scope, key],
    );
    return row && toView(row);
  }

  async purgeExpired(batchSize: number): Promise<number> {
    // SKIP LOCKED: never wait on (or block) a row that a claim is deciding on right now.
    const versions = await this.execute(
      `DELETE FROM ${this.versions} AS v USING (
         SELECT scope, resource FROM ${this.versions} WHERE expires_at <= clock_timestamp()
         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
       ) AS expired
       WHERE v.scope = expired.scope AND v.resource = expired.resource`,
      [batchSize],
    ).catch((error: unknown) => {
      // The versions table comes with event ordering; an app that never orders events may not have it yet.
      if (error instanceof IdempotencyConfigurationError) return 0;
      throw error;
    });
    return versions + await this.execute(
      `DELETE FROM ${this.table} AS r USING (
         SELECT scope, key FROM ${this.table}
         WHERE expires_at <= clock_timestamp()
           AND (state = 'completed' OR lease_expires_at IS NULL OR lease_expires_at <= clock_timestamp())
         ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED
       ) AS expired
       WHERE r.scope = expired.scope AND r.key = expired.key`,
      [batchSize],
    );
  }

  /** Step 2 of the claim, on an open transaction: insert if absent, lock, decide, update. */
  private async lockedClaim(
    runner: QueryRunner,
    request: ClaimRequest,
    owner: string,
    deadline?: number,
  ): Promise<Exclude<ClaimOutcome, { status: 'claimed' }> | Extract<ClaimOutcome, { status: 'claimed' }>> {
    const ref = { scope: request.scope, key: request.key, owner };
    // lock_timeout bounds each statement; a claim that waited in one statement has less left for the next.
    let budgetSetAt = Date.now();
    const stayWithinDeadline = async () => {
      if (deadline === undefined || Date.now() - budgetSetAt < 20) return;
      if (deadline <= Date.now()) throw Object.assign(new Error('waitTimeout ran out'), { code: LOCK_NOT_AVAILABLE });
      await runner.query(`SELECT set_config('lock_timeout', $1, true)`, [milliseconds(deadline - Date.now())]);
      budgetSetAt = Date.now();
    };
    for (;;) {
      await stayWithinDeadline();
      const inserted = await runner.query(`${this.insertSql()} RETURNING 1`, this.insertParams(request, owner), true);
      if (inserted.records.length === 1) return { status: 'claimed', ref, attempt: 1, takenOver: false };

      await stayWithinDeadline();
      const locked = await runner.query(
        `SELECT ${CLAIM_COLUMNS} FROM ${this.table} WHERE scope = $1 AND key = $2 FOR UPDATE`,
        [request.scope, request.key],
        true,
      );
      const row = locked.records[0] as ClaimRow | undefined;
      // Deleted (released or purged) between the insert and the lock: insert again.
      if (!row) continue;

      const decision = decide(row, request.fingerprint);
      const outcome = answer(row, decision);
      if (outcome) return outcome;

      const startOver = decision === 'start-over';
      const updated = await runner.query(
        `UPDATE ${this.table} SET
           state = 'in_flight', owner = $3, fingerprint = $4,
           attempts = CASE WHEN $7 THEN 1 ELSE attempts + 1 END,
           created_at = CASE WHEN $7 THEN clock_timestamp() ELSE created_at END,
           lease_expires_at = ${msFromNow('$5')}, expires_at = ${msFromNow('$6')},
           response_status = NULL, response_headers = NULL, response_body = NULL, completed_at = NULL
         WHERE scope = $1 AND key = $2
         RETURNING attempts`,
        [...this.insertParams(request, owner), startOver],
        true,
      );
      const attempt = (updated.records[0] as { attempts: number }).attempts;
      return { status: 'claimed', ref, attempt, takenOver: !startOver };
    }
  }

  private transactionalClaim(runner: QueryRunner, ref: ClaimRef): TransactionalClaim {
    return {
      ref,
      manager: runner.manager,
      complete: async (response, ttlMs) => {
        try {
          await runner.query(this.completeSql(), this.completeParams(ref, response, ttlMs));
          await runner.commitTransaction();
        } catch (error) {
          await closeQuietly(runner);
          throw translate(error);
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
      advanceVersion: async (resource, version, ttlMs) => {
        try {
          // ON CONFLICT DO UPDATE locks the resource's row and, once a concurrent holder commits, decides on
          // its newest version; the lock is held to this transaction's end, across the handler. The wait is
          // bounded by the lock_timeout the claim set.
          const updated = await runner.query(
            `INSERT INTO ${this.versions} AS v (scope, resource, version, expires_at)
             VALUES ($1, $2, $3::numeric, ${msFromNow('$4')})
             ON CONFLICT (scope, resource) DO UPDATE
               SET version = EXCLUDED.version, expires_at = GREATEST(v.expires_at, EXCLUDED.expires_at)
               WHERE v.version <= EXCLUDED.version OR v.expires_at <= clock_timestamp()
             RETURNING 1`,
            [ref.scope, resource, version, ttlMs],
            true,
          );
          return updated.records.length === 1 ? 'applied' : 'stale';
        } catch (error) {
          if (isLockTimeout(error)) return 'busy';
          throw translate(error);
        }
      },
    };
  }

  private insertSql(): string {
    return `INSERT INTO ${this.table} (scope, key, state, fingerprint, owner, lease_expires_at, expires_at)
      VALUES ($1, $2, 'in_flight', $4, $3, ${msFromNow('$5')}, ${msFromNow('$6')})
      ON CONFLICT (scope, key) DO NOTHING`;
  }

  private insertParams(request: ClaimRequest, owner: string): unknown[] {
    // The lease may outlast the TTL; the row must not expire before its lease does.
    return [request.scope, request.key, owner, request.fingerprint, request.leaseMs, Math.max(request.ttlMs, request.leaseMs)];
  }

  private completeSql(): string {
    return `UPDATE ${this.table} SET
        state = 'completed', response_status = $4, response_headers = $5::jsonb, response_body = $6,
        completed_at = clock_timestamp(), expires_at = ${msFromNow('$7')}, lease_expires_at = NULL
      WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'in_flight'`;
  }

  private completeParams(ref: ClaimRef, response: StoredResponse, ttlMs: number): unknown[] {
    return [ref.scope, ref.key, ref.owner, response.status, JSON.stringify(response.headers), response.body, ttlMs];
  }

  private async inTransaction<T>(work: (runner: QueryRunner) => Promise<T>): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction('READ COMMITTED');
      const result = await work(runner);
      await runner.commitTransaction();
      return result;
    } catch (error) {
      await closeQuietly(runner);
      throw translate(error);
    } finally {
      // closeQuietly may have released it already.
      if (!runner.isReleased) await runner.release();
    }
  }

  private async query<T>(sql: string, parameters: unknown[]): Promise<T[]> {
    try {
      return (await this.dataSource.query(sql, parameters)) as T[];
    } catch (error) {
      throw translate(error);
    }
  }

  /** Runs a statement and returns how many rows it changed. */
  private async execute(sql: string, parameters: unknown[]): Promise<number> {
    const runner = this.dataSource.createQueryRunner();
    try {
      return (await runner.query(sql, parameters, true)).affected ?? 0;
    } catch (error) {
      throw translate(error);
    } finally {
      await runner.release();
    }
  }
}

function decide(row: ClaimRow, fingerprint: string | null): Decision {
  if (row.expired) return 'start-over';
  if (row.fingerprint !== null && fingerprint !== null && row.fingerprint !== fingerprint) return 'mismatch';
  if (row.state === 'completed') return 'replay';
  return row.lease_expired ? 'take-over' : 'in-flight';
}

/** The outcome of a decision that leaves the row as it is; `undefined` when the row must change. */
function answer(row: ClaimRow, decision: Decision): Exclude<ClaimOutcome, { status: 'claimed' }> | undefined {
  switch (decision) {
    case 'replay':
      return { status: 'completed', response: toResponse(row) };
    case 'mismatch':
      return { status: 'fingerprint-mismatch' };
    case 'in-flight':
      return { status: 'in-flight', retryAfterMs: row.lease_remaining_ms ?? 0 };
    default:
      return undefined;
  }
}

function toResponse(row: Pick<ClaimRow, 'response_status' | 'response_headers' | 'response_body'>): StoredResponse {
  return {
    status: row.response_status ?? 200,
    headers: row.response_headers ?? [],
    body: row.response_body ?? Buffer.alloc(0),
  };
}

function toView(row: RecordRow): IdempotencyRecordView {
  return {
    scope: row.scope,
    key: row.key,
    state: row.state,
    fingerprint: row.fingerprint,
    attempts: row.attempts,
    owner: row.owner,
    createdAt: row.created_at,
    completedAt: row.completed_at,
    leaseExpiresAt: row.lease_expires_at,
    expiresAt: row.expires_at,
    response: row.state === 'completed' ? toResponse(row) : null,
  };
}

/** A duration as PostgreSQL settings take it; 0 would mean "no limit", so never less than 1ms. */
function milliseconds(ms: number): string {
  return `${Math.max(1, Math.ceil(ms))}ms`;
}

function sqlState(error: unknown): string | undefined {
  const failure = error as { code?: unknown; driverError?: { code?: unknown } } | undefined;
  const code = failure?.driverError?.code ?? failure?.code;
  return typeof code === 'string' ? code : undefined;
}

function isLockTimeout(error: unknown): boolean {
  return sqlState(error) === LOCK_NOT_AVAILABLE;
}

/** A missing table or column is a setup mistake, not an outage: say how to fix it. */
function translate(error: unknown): unknown {
  if (sqlState(error) !== UNDEFINED_TABLE && sqlState(error) !== UNDEFINED_COLUMN) return error;
  return new IdempotencyConfigurationError(
    `A table of nestjs-idempotency is missing or out of date (${(error as Error).message}). ` +
      'Add ...idempotencyMigrations to the DataSource migrations and run them (or migrationsRun: true), ' +
      'or add ...idempotencyEntities with synchronize: true.',
    { cause: error },
  );
}

/** Ends a transaction that failed; the original error is what the caller reports. */
async function closeQuietly(runner: QueryRunner): Promise<void> {
  if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
  if (!runner.isReleased) await runner.release();
}
