import { createHash, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { type DataSource, type EntityManager, type QueryRunner, QueryRunnerAlreadyReleasedError } from 'typeorm';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { TransactionAbortedError } from '../errors/transaction-aborted.error';
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
/** A named statement missing on the server connection: a pooler in transaction mode handed over another one. */
const INVALID_STATEMENT_NAME = '26000';
const DUPLICATE_PREPARED_STATEMENT = '42P05';

type FastClaimRow = ClaimRow & { inserted: boolean };

/** How a record found by a claim is answered; decided from the row alone. */
type Decision = 'replay' | 'mismatch' | 'in-flight' | 'take-over' | 'start-over';

/** The columns a claim decides on. Times are compared in SQL, on the database clock. */
export interface ClaimRow {
  state: RecordState;
  fingerprint: string | null;
  expired: boolean;
  lease_expired: boolean | null;
  lease_remaining_ms: number | null;
  expires_in_ms: number;
  response_status: number | null;
  response_headers: Array<[string, string]> | null;
  response_body: Uint8Array | null;
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
  response_body: Uint8Array | null;
}

export const CLAIM_COLUMNS = `
  state, fingerprint,
  expires_at <= clock_timestamp() AS expired,
  lease_expires_at <= clock_timestamp() AS lease_expired,
  GREATEST(0, EXTRACT(EPOCH FROM lease_expires_at - clock_timestamp()) * 1000)::float8 AS lease_remaining_ms,
  GREATEST(0, EXTRACT(EPOCH FROM expires_at - clock_timestamp()) * 1000)::float8 AS expires_in_ms,
  response_status, response_headers, response_body`;

/** `$n` milliseconds from now on the database clock (`now()` is frozen at the start of a transaction). */
export const msFromNow = (param: string) => `clock_timestamp() + ${param}::float8 * interval '1 millisecond'`;

/** node-postgres' pool, or one of its clients: what named statements are sent through. */
interface NodePostgres {
  query(config: { name: string; text: string; values: unknown[] }): Promise<{ rows: unknown[]; rowCount: number | null }>;
}

/** node-postgres' pool, where a connection is taken by hand (to check a claim's deadline before its statement). */
interface NodePostgresPool {
  connect(): Promise<PooledClient>;
}

interface PooledClient extends NodePostgres {
  release(error?: Error): void;
  once(event: 'error', listener: (error: Error) => void): unknown;
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
}

export interface TypeOrmIdempotencyStoreOptions {
  /**
   * Named prepared statements, planned once per connection. Default: on where TypeORM runs on
   * node-postgres, off with another driver (PGlite's takes only text). See `IdempotencyModuleOptions`.
   */
  preparedStatements?: boolean;
}

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
  readonly transactional = true;
  protected readonly table: string;
  private readonly versions: string;
  private readonly prepared: boolean;
  /** Whether a transaction opened without an isolation level is READ COMMITTED; asked once. */
  private readCommittedByDefault?: Promise<boolean>;

  constructor(
    protected readonly dataSource: DataSource,
    options: TypeOrmIdempotencyStoreOptions = {},
  ) {
    this.table = qualifiedTableName(dataSource, this.recordsTableName());
    this.versions = qualifiedTableName(dataSource, IDEMPOTENCY_VERSIONS_TABLE);
    this.prepared = options.preparedStatements ?? !(dataSource.options as { driver?: unknown }).driver;
  }

  /** The table of the records, unqualified. */
  protected recordsTableName(): string {
    return IDEMPOTENCY_TABLE;
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
    return this.inTransaction((runner) => this.lockedClaim(runner, request, owner), request.deadline);
  }

  /**
   * Step 1: insert the row if absent, else read it, in one statement. `undefined`, or a row without a
   * state, when the answer needs the locked path: the row was committed after this statement's snapshot
   * (under a stricter default isolation than READ COMMITTED, PostgreSQL says so with a serialization failure).
   */
  private async fastClaim(request: ClaimRequest, owner: string, runner?: QueryRunner, settings: unknown[] = []): Promise<FastClaimRow | undefined> {
    try {
      const { rows } = await this.send<FastClaimRow>(this.fastClaimSql(settings.length > 0), [...this.insertParams(request, owner), ...settings], runner, this.prepared, request.deadline);
      return rows[0];
    } catch (error) {
      if (sqlState(error) === SERIALIZATION_FAILURE) return undefined;
      throw error;
    }
  }

  /**
   * The fast path's statement. In a transaction (`withSettings`) it first sets the transaction's
   * lock_timeout ($7) and idle timeout ($8): set_config in the insert's source runs before the insert can
   * wait on a concurrent holder of the key, and saves the claim a round trip.
   */
  private fastClaimSql(withSettings: boolean): string {
    const source = withSettings
      ? `FROM (SELECT set_config('lock_timeout', $7, true), set_config('idle_in_transaction_session_timeout', $8, true)) AS settings`
      : '';
    return `WITH inserted AS (
        INSERT INTO ${this.table} (scope, key, state, fingerprint, owner, lease_expires_at, expires_at)
        SELECT $1::text, $2::text, 'in_flight', $4::text, $3::uuid, ${msFromNow('$5')}, ${msFromNow('$6')} ${source}
        ON CONFLICT (scope, key) DO NOTHING
        RETURNING 1
      )
      SELECT EXISTS (SELECT 1 FROM inserted) AS inserted, existing.*
      FROM (SELECT 1) AS one
      LEFT JOIN LATERAL (
        SELECT ${CLAIM_COLUMNS} FROM ${this.table}
        WHERE scope = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM inserted)
      ) AS existing ON true`;
  }

  async peek(request: ClaimRequest): Promise<Exclude<ClaimOutcome, { status: 'claimed' | 'in-flight' }> | undefined> {
    const {
      rows: [row],
    } = await this.send<ClaimRow>(`SELECT ${CLAIM_COLUMNS} FROM ${this.table} WHERE scope = $1 AND key = $2`, [request.scope, request.key]);
    if (!row) return undefined;
    switch (decide(row, request.fingerprint)) {
      case 'replay':
        return replay(row);
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
    const owner = randomUUID();
    const isolation = (await this.isReadCommittedByDefault()) ? undefined : 'READ COMMITTED';
    await connectWithin(runner, deadline - Date.now());
    try {
      await runner.startTransaction(isolation);
      const { outcome, lockTimeoutMs: claimLockTimeoutMs } = await this.claimOnTransaction(runner, request, owner, deadline, idleTimeoutMs);
      if (outcome.status !== 'claimed') {
        await runner.commitTransaction();
        await runner.release();
        return outcome;
      }
      // The claim's lock_timeout is what was left of the wait; the handler's own lock waits get the whole of it
      // again. Only a claim that waited (on a lock, or a tenth of the wait for a connection) pays this round trip.
      if (handlerLockTimeoutMs - claimLockTimeoutMs > Math.max(20, handlerLockTimeoutMs / 10)) {
        await this.send(`SELECT set_config('lock_timeout', $1, true)`, [milliseconds(handlerLockTimeoutMs)], runner);
      }
      return { ...outcome, claim: this.transactionalClaim(runner, outcome.ref) };
    } catch (error) {
      await closeQuietly(runner);
      if (isLockTimeout(error)) return { status: 'in-flight', retryAfterMs: 1000 };
      throw translate(error);
    }
  }

  /**
   * The claim of `claimInTransaction`, on its open transaction; also returns the lock_timeout the transaction
   * was left with, which the handler's own lock waits may need raised again.
   */
  protected async claimOnTransaction(
    runner: QueryRunner,
    request: ClaimRequest,
    owner: string,
    deadline: number,
    idleTimeoutMs: number,
  ): Promise<{ outcome: ClaimOutcome; lockTimeoutMs: number }> {
    // This claim waits on a concurrent holder of the row no longer than lockTimeoutMs; and a handler
    // stuck inside the transaction for idleTimeoutMs loses its session, which frees the row and the connection.
    let lockTimeoutMs = deadline - Date.now();
    const row = await this.fastClaim(request, owner, runner, [milliseconds(lockTimeoutMs), milliseconds(idleTimeoutMs)]);
    const found = row?.inserted ? undefined : row?.state != null ? answer(row, decide(row, request.fingerprint)) : undefined;
    if (row?.inserted) {
      return { outcome: { status: 'claimed', ref: { scope: request.scope, key: request.key, owner }, attempt: 1, takenOver: false }, lockTimeoutMs };
    }
    const outcome = found ?? (await this.lockedClaim(runner, request, owner, deadline));
    // The locked path lowers lock_timeout to what is left of the wait as it goes.
    lockTimeoutMs = deadline - Date.now();
    return { outcome, lockTimeoutMs };
  }

  async complete(ref: ClaimRef, response: StoredResponse, ttlMs: number): Promise<boolean> {
    return (await this.send(this.completeSql(), this.completeParams(ref, response, ttlMs))).count === 1;
  }

  async release(ref: ClaimRef): Promise<boolean> {
    const sql = `DELETE FROM ${this.table} WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'in_flight'`;
    return (await this.send(sql, [ref.scope, ref.key, ref.owner])).count === 1;
  }

  async renew(ref: ClaimRef, leaseMs: number): Promise<boolean> {
    const sql = `UPDATE ${this.table}
      SET lease_expires_at = ${msFromNow('$4')}, expires_at = GREATEST(expires_at, ${msFromNow('$4')})
      WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'in_flight'`;
    return (await this.send(sql, [ref.scope, ref.key, ref.owner, leaseMs])).count === 1;
  }

  async find(scope: string, key: string): Promise<IdempotencyRecordView | undefined> {
    const {
      rows: [row],
    } = await this.send<RecordRow>(
      // The columns by name: a prepared `SELECT *` fails once a later migration adds one.
      `SELECT scope, key, state, fingerprint, attempts, owner, created_at, completed_at, lease_expires_at, expires_at,
              response_status, response_headers, response_body
       FROM ${this.table} WHERE scope = $1 AND key = $2 AND expires_at > clock_timestamp()`,
      [scope, key],
    );
    return row && toView(row);
  }

  async purgeExpired(batchSize: number): Promise<number> {
    const versions = await this.purgeExpiredVersions(batchSize);
    const { count: records } = await this.send(
      purgeSql(this.table, `AND (state = 'completed' OR lease_expires_at IS NULL OR lease_expires_at <= now())`),
      [batchSize],
      undefined,
      false,
    );
    return versions + records;
  }

  /** One batch of expired resource versions; none where the table of event ordering was never created. */
  protected async purgeExpiredVersions(batchSize: number): Promise<number> {
    try {
      return (await this.send(purgeSql(this.versions), [batchSize], undefined, false)).count;
    } catch (error) {
      if (error instanceof IdempotencyConfigurationError) return 0;
      throw error;
    }
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
      await this.send(`SELECT set_config('lock_timeout', $1, true)`, [milliseconds(deadline - Date.now())], runner);
      budgetSetAt = Date.now();
    };
    for (;;) {
      await stayWithinDeadline();
      const inserted = await this.send(`${this.insertSql()} RETURNING 1`, this.insertParams(request, owner), runner);
      if (inserted.rows.length === 1) return { status: 'claimed', ref, attempt: 1, takenOver: false };

      await stayWithinDeadline();
      const {
        rows: [row],
      } = await this.send<ClaimRow>(`SELECT ${CLAIM_COLUMNS} FROM ${this.table} WHERE scope = $1 AND key = $2 FOR UPDATE`, [request.scope, request.key], runner);
      // Deleted (released or purged) between the insert and the lock: insert again.
      if (!row) continue;

      const decision = decide(row, request.fingerprint);
      const outcome = answer(row, decision);
      if (outcome) return outcome;

      const startOver = decision === 'start-over';
      const updated = await this.send<{ attempts: number }>(
        `UPDATE ${this.table} SET
           state = 'in_flight', owner = $3, fingerprint = $4,
           attempts = CASE WHEN $7 THEN 1 ELSE attempts + 1 END,
           created_at = CASE WHEN $7 THEN clock_timestamp() ELSE created_at END,
           lease_expires_at = ${msFromNow('$5')}, expires_at = ${msFromNow('$6')},
           response_status = NULL, response_headers = NULL, response_body = NULL, completed_at = NULL
         WHERE scope = $1 AND key = $2
         RETURNING attempts`,
        [...this.insertParams(request, owner), startOver],
        runner,
      );
      const attempt = updated.rows[0].attempts;
      return { status: 'claimed', ref, attempt, takenOver: !startOver };
    }
  }

  private transactionalClaim(runner: QueryRunner, ref: ClaimRef): TransactionalClaim {
    return {
      ref,
      manager: runner.manager,
      complete: async (response, ttlMs) => {
        try {
          await this.send(this.completeSql(), this.completeParams(ref, response, ttlMs), runner);
          await runner.commitTransaction();
        } catch (error) {
          await closeQuietly(runner);
          if (sqlState(error) === '25P02') throw new TransactionAbortedError({ cause: error });
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
          const updated = await this.send(
            `INSERT INTO ${this.versions} AS v (scope, resource, version, expires_at)
             VALUES ($1, $2, $3::numeric, ${msFromNow('$4')})
             ON CONFLICT (scope, resource) DO UPDATE
               SET version = EXCLUDED.version, expires_at = GREATEST(v.expires_at, EXCLUDED.expires_at)
               WHERE v.version <= EXCLUDED.version OR v.expires_at <= clock_timestamp()
             RETURNING 1`,
            [ref.scope, resource, version, ttlMs],
            runner,
          );
          return updated.rows.length === 1 ? 'applied' : 'stale';
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

  protected insertParams(request: ClaimRequest, owner: string): unknown[] {
    // The lease may outlast the TTL; the row must not expire before its lease does.
    return [request.scope, request.key, owner, request.fingerprint, request.leaseMs, Math.max(request.ttlMs, request.leaseMs)];
  }

  protected completeSql(): string {
    return `UPDATE ${this.table} SET
        state = 'completed', response_status = $4, response_headers = $5::jsonb, response_body = $6,
        completed_at = clock_timestamp(), expires_at = ${msFromNow('$7')}, lease_expires_at = NULL
      WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'in_flight'`;
  }

  private completeParams(ref: ClaimRef, response: StoredResponse, ttlMs: number): unknown[] {
    return [ref.scope, ref.key, ref.owner, response.status, JSON.stringify(response.headers), response.body, ttlMs];
  }

  protected async inTransaction<T>(work: (runner: QueryRunner) => Promise<T>, deadline?: number): Promise<T> {
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      notPast(deadline);
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

  /**
   * Sends one statement, on the runner's connection if given, and returns its rows and how many it changed.
   * On node-postgres the statement is named, so that each connection plans it once: planning the claim's
   * statement costs PostgreSQL more than running it (half the throughput, measured unnamed). `prepared: false`
   * has it planned at each run, for its parameters.
   */
  protected async send<T = unknown>(
    sql: string,
    values: unknown[],
    runner?: QueryRunner,
    prepared = this.prepared,
    /** Not sent once this has passed (`Date.now()` ms) by the time a pooled connection comes. */
    deadline?: number,
  ): Promise<{ rows: T[]; count: number }> {
    // A released runner's connection may already be another request's.
    if (runner?.isReleased) throw new QueryRunnerAlreadyReleasedError();
    try {
      if (prepared && !runner && deadline !== undefined) {
        const client = await (this.dataSource.driver as unknown as { master: NodePostgresPool }).master.connect();
        // As pool.query() does. Out of the pool, a client has no 'error' listener of the pool's: the server
        // closing its connection would be an unhandled 'error' event, which ends the process. The query fails
        // with that error too; a client that failed is not handed out again.
        let failed: Error | undefined;
        const onError = (error: Error) => {
          failed = error;
        };
        client.once('error', onError);
        let result: Awaited<ReturnType<NodePostgres['query']>>;
        try {
          notPast(deadline);
          result = await client.query({ name: statementName(sql), text: sql, values });
        } catch (error) {
          client.removeListener('error', onError);
          client.release(error as Error);
          throw error;
        }
        client.removeListener('error', onError);
        client.release(failed);
        return { rows: result.rows as T[], count: result.rowCount ?? 0 };
      }
      if (prepared) {
        // TypeORM's postgres driver: its pool (`master`: claims must never go to a read replica), or the runner's client.
        const target = (runner ? await runner.connect() : (this.dataSource.driver as unknown as { master: unknown }).master) as NodePostgres;
        const result = await target.query({ name: statementName(sql), text: sql, values });
        return { rows: result.rows as T[], count: result.rowCount ?? 0 };
      }
      const own = runner ?? this.dataSource.createQueryRunner('master');
      try {
        if (!runner && deadline !== undefined) {
          await own.connect();
          notPast(deadline);
        }
        const result = await own.query(sql, values, true);
        return { rows: (result.records ?? []) as T[], count: result.affected ?? 0 };
      } finally {
        if (!runner) await own.release();
      }
    } catch (error) {
      throw translate(error, this.missingTableFix());
    }
  }

  /** What a missing or outdated table of this store is fixed with. */
  protected missingTableFix(): string {
    return (
      'Add ...idempotencyMigrations to the DataSource migrations and run them (or migrationsRun: true), ' +
      'or add ...idempotencyEntities with synchronize: true.'
    );
  }

  /** Asked once: only a database whose default isolation is not READ COMMITTED costs the claim a SET TRANSACTION. */
  protected isReadCommittedByDefault(): Promise<boolean> {
    if (this.dataSource.options.type === 'postgres' && this.dataSource.options.isolationLevel) return Promise.resolve(false);
    this.readCommittedByDefault ??= this.send<{ level: string }>(`SELECT current_setting('default_transaction_isolation') AS level`, []).then(
      ({ rows }) => rows[0]?.level === 'read committed',
      (error: unknown) => {
        this.readCommittedByDefault = undefined;
        throw error;
      },
    );
    return this.readCommittedByDefault;
  }
}

/**
 * One purge batch: a single statement, so its row locks last as long as it runs. `SKIP LOCKED`: it never
 * waits on (or blocks) a row that a claim is deciding on. `now()`, the statement's start in autocommit, and
 * not `clock_timestamp()`: a stable bound is an index condition, so the scan stops at the first live row
 * instead of filtering every live row of the table; rows that expire meanwhile wait for the next batch.
 * Rows are deleted by `ctid`, as locked: no second lookup through the primary key (a batch took 2.7 times as
 * long that way). Planned at each batch, never prepared: a generic plan made while the table was small
 * filtered a sequential scan of the table by the whole array (a batch of 100,000 rows took 20 s, not 0.2 s).
 */
function purgeSql(table: string, condition = ''): string {
  return `DELETE FROM ${table} WHERE ctid = ANY (ARRAY(
      SELECT ctid FROM ${table} WHERE expires_at <= now() ${condition}
      ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED))`;
}

const statementNames = new Map<string, string>();

/** A name per statement text: node-postgres refuses one name for two texts. */
function statementName(sql: string): string {
  let name = statementNames.get(sql);
  if (!name) {
    name = `nestjs_idempotency_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
    statementNames.set(sql, name);
  }
  return name;
}

export function decide(row: ClaimRow, fingerprint: string | null): Decision {
  if (row.expired) return 'start-over';
  if (row.fingerprint !== null && fingerprint !== null && row.fingerprint !== fingerprint) return 'mismatch';
  if (row.state === 'completed') return 'replay';
  return row.lease_expired ? 'take-over' : 'in-flight';
}

/** The outcome of a decision that leaves the row as it is; `undefined` when the row must change. */
export function answer(row: ClaimRow, decision: Decision): Exclude<ClaimOutcome, { status: 'claimed' }> | undefined {
  switch (decision) {
    case 'replay':
      return replay(row);
    case 'mismatch':
      return { status: 'fingerprint-mismatch' };
    case 'in-flight':
      return { status: 'in-flight', retryAfterMs: row.lease_remaining_ms ?? 0 };
    default:
      return undefined;
  }
}

function replay(row: ClaimRow): Extract<ClaimOutcome, { status: 'completed' }> {
  return { status: 'completed', response: toResponse(row), record: { fingerprint: row.fingerprint, expiresInMs: row.expires_in_ms } };
}

function toResponse(row: Pick<ClaimRow, 'response_status' | 'response_headers' | 'response_body'>): StoredResponse {
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
export function milliseconds(ms: number): string {
  return `${Math.max(1, Math.ceil(ms))}ms`;
}

export function sqlState(error: unknown): string | undefined {
  const failure = error as { code?: unknown; driverError?: { code?: unknown } } | undefined;
  const code = failure?.driverError?.code ?? failure?.code;
  return typeof code === 'string' ? code : undefined;
}

export function isLockTimeout(error: unknown): boolean {
  return sqlState(error) === LOCK_NOT_AVAILABLE;
}

/** A missing table or column is a setup mistake, not an outage: say how to fix it. */
function translate(error: unknown, fix?: string): unknown {
  if (sqlState(error) === INVALID_STATEMENT_NAME || sqlState(error) === DUPLICATE_PREPARED_STATEMENT) {
    return new IdempotencyConfigurationError(
      `A prepared statement of nestjs-idempotency was not where it was prepared (${(error as Error).message}): the ` +
        'connection pooler in between does not keep prepared statements (PgBouncer in transaction pooling, before 1.21 ' +
        'or without max_prepared_statements). Set preparedStatements: false in IdempotencyModule.forRoot().',
      { cause: error },
    );
  }
  if (sqlState(error) !== UNDEFINED_TABLE && sqlState(error) !== UNDEFINED_COLUMN) return error;
  return new IdempotencyConfigurationError(
    `A table of nestjs-idempotency is missing or out of date (${(error as Error).message}). ` +
      (fix ??
        'Add ...idempotencyMigrations to the DataSource migrations and run them (or migrationsRun: true), ' +
          'or add ...idempotencyEntities with synchronize: true.'),
    { cause: error },
  );
}

/**
 * Takes a pooled connection for the runner, waiting no longer than the claim may wait: every running
 * handler in transaction mode holds one, and a claim must not queue behind them past its `waitTimeout`.
 * A connection that comes after that goes straight back to the pool.
 */
async function connectWithin(runner: QueryRunner, ms: number): Promise<void> {
  const connecting = runner.connect();
  const timer = new AbortController();
  const gaveUp = sleep(Math.max(0, ms), undefined, { signal: timer.signal }).then(
    () => true,
    () => false,
  );
  const late = await Promise.race([connecting.then(() => false), gaveUp]).finally(() => timer.abort());
  if (!late) return;
  connecting.then(
    () => runner.release(),
    () => undefined, // It failed on its own: nothing to give back, and nobody waits for it any more.
  );
  throw new Error(
    `No pooled connection came within the claim's waitTimeout (${Math.round(ms)} ms): every connection is taken ` +
      '(in transaction mode each running handler holds one). Raise the pool size, or lower the load per instance.',
  );
}

/**
 * Stops a claim whose caller has given up waiting (it answered 503): started now, it would hold the key for a
 * request nobody runs. Checked once the claim has its pooled connection, before its first statement.
 */
export function notPast(deadline: number | undefined): void {
  if (deadline !== undefined && Date.now() >= deadline) {
    throw new Error('No pooled connection came before the claim\'s caller stopped waiting (waitTimeout): the claim was not started.');
  }
}

/** Ends a transaction that failed; the original error is what the caller reports. */
async function closeQuietly(runner: QueryRunner): Promise<void> {
  if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
  if (!runner.isReleased) await runner.release();
}
