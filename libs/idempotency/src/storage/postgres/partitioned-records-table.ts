import type { QueryRunnerLike } from '../typeorm-like';
import { claims, decide } from '../../claim/claim-state';
import type { ClaimOutcome, ClaimRef, ClaimRequest } from '../idempotency-store';
import { answer, CLAIM_COLUMNS, type ClaimRow, claimedRecord, NOW } from './claim-row';
import type { PartitionMaintainer } from './partition-maintainer';
import { IDEMPOTENCY_PARTITIONED_TABLE } from './partitioning.options';
import { type ClaimIsolation, milliseconds, msFromNow, type PostgresSession } from './postgres-session';
import { claimParams, NEW_RECORD, type OwnerStatements, ownerStatements } from './record-statements';
import type { ClaimOnTransaction, RecordsTable } from './records-table';
import { isLockTimeout, SQL_STATE, sqlState } from './sql-state';

/**
 * How long a claim in lease mode waits for its key's lock. Claims in lease mode hold it for milliseconds; one in
 * transaction mode holds it for its handler's whole run, and the key is then in flight.
 */
const KEY_LOCK_TIMEOUT = '1s';
/** The Retry-After of a claim that found its key's lock held past KEY_LOCK_TIMEOUT, as the plain store answers in transaction mode. */
const KEY_BUSY_RETRY_MS = 1000;
/** The advisory lock of one (scope, key), which every claim of the key takes: the key's hash, seeded with the scope's. */
const KEY_LOCK = `pg_advisory_xact_lock(hashtextextended($2::text, hashtextextended($1::text, 0)))`;

/**
 * The lookup's row, with where it lies: its partition's oid and its ctid, to change that very row (which the
 * lookup locked, so it cannot move). Not its `created_at`, whose text depends on DateStyle and TimeZone.
 */
type LockedRow = { inserted: boolean; partition: number | string | null; position: string | null } & ClaimRow;

/**
 * `idempotency_partitioned_records`, partitioned by creation time. A unique index of a partitioned table must
 * hold the partition key, so (scope, key) is not unique in the table by itself. Claims keep it unique: each
 * takes an advisory lock on its key in a transaction, and only then, in a new statement (a new snapshot under
 * READ COMMITTED), looks the key up in every partition and inserts it if absent. A record that starts over after
 * it expired moves to the current partition, so old partitions only empty out. Completion and renewal never touch
 * an expired record, so a partition whose records have all expired stays so.
 */
export class PartitionedRecordsTable implements RecordsTable {
  readonly owned: OwnerStatements;

  constructor(
    private readonly session: PostgresSession,
    readonly name: string,
    private readonly maintainer: PartitionMaintainer,
  ) {
    this.owned = ownerStatements(name, { liveOnly: true });
  }

  async claim(request: ClaimRequest, owner: string): Promise<ClaimOutcome> {
    try {
      return await this.session.transaction(async (runner) => {
        const [sql, values] = this.keyLock(request, KEY_LOCK_TIMEOUT);
        await this.session.send(sql, values, { runner });
        return this.claimLocked(runner, request, owner);
      }, request.deadline);
    } catch (error) {
      if (isLockTimeout(error)) return { status: 'in-flight', retryAfterMs: KEY_BUSY_RETRY_MS };
      throw error;
    }
  }

  /** In transaction mode the key's lock is held to the transaction's end: duplicates wait on it, up to their waitTimeout. */
  async claimOnTransaction(
    runner: QueryRunnerLike,
    isolation: ClaimIsolation,
    request: ClaimRequest,
    owner: string,
    deadline: number,
    idleTimeoutMs: number,
  ): Promise<ClaimOnTransaction> {
    const lockTimeoutMs = deadline - Date.now();
    const [sql, values] = this.keyLock(request, milliseconds(lockTimeoutMs), milliseconds(idleTimeoutMs));
    await this.session.beginWith(runner, isolation, sql, values);
    return { outcome: await this.claimLocked(runner, request, owner), lockTimeoutMs };
  }

  /** Drops the partitions whose records have all expired (and makes those ahead): no record is deleted one by one. */
  purge(): Promise<number> {
    return this.maintainer.purge();
  }

  /** Runs a claim; if no partition takes the new record (no purge ran for `ahead` intervals), makes them and claims again. */
  async withRoom<T>(claim: () => Promise<T>): Promise<T> {
    try {
      return await claim();
    } catch (error) {
      if (!isNoPartition(error)) throw error;
      await this.maintainer.prepare();
      return claim();
    }
  }

  /**
   * The statement that takes the key's advisory lock, after setting lock_timeout (and, given a second setting, the
   * idle timeout) for the transaction: a materialized CTE runs before the query that reads it, so the wait for the
   * key is bounded. Its text and values.
   */
  private keyLock(request: ClaimRequest, lockTimeout: string, idleTimeout?: string): [string, unknown[]] {
    const settings = [`set_config('lock_timeout', $3, true)`];
    if (idleTimeout !== undefined) settings.push(`set_config('idle_in_transaction_session_timeout', $4, true)`);
    return [
      `WITH settings AS MATERIALIZED (SELECT ${settings.join(', ')}) SELECT ${KEY_LOCK} FROM settings`,
      [request.scope, request.key, lockTimeout, ...(idleTimeout === undefined ? [] : [idleTimeout])],
    ];
  }

  /**
   * The claim, once this transaction holds the key's lock: no other claim of the key can insert or move its
   * record until the commit. A new statement, so its snapshot sees what the previous holder committed.
   */
  private async claimLocked(runner: QueryRunnerLike, request: ClaimRequest, owner: string): Promise<ClaimOutcome> {
    const ref: ClaimRef = { scope: request.scope, key: request.key, owner };
    const params = claimParams(request, owner);
    const {
      rows: [row],
    } = await this.session.send<LockedRow>(
      `WITH existing AS (
         SELECT tableoid AS partition, ctid::text AS position, ${CLAIM_COLUMNS} FROM ${this.name}
         WHERE scope = $1 AND key = $2
         ORDER BY created_at DESC LIMIT 1
         FOR UPDATE
       ), inserted AS (
         INSERT INTO ${this.name} ${NEW_RECORD.columns}
         SELECT ${NEW_RECORD.values}
         WHERE NOT EXISTS (SELECT 1 FROM existing)
         RETURNING 1
       )
       SELECT EXISTS (SELECT 1 FROM inserted) AS inserted, existing.* FROM (SELECT 1) AS one LEFT JOIN existing ON true`,
      params,
      { runner },
    );
    if (row.inserted) return { status: 'claimed', ref, attempt: 1, takenOver: false };
    const decision = decide(claimedRecord(row), request, NOW);
    if (!claims(decision)) return answer(row, decision);

    const place = [...params, row.partition, row.position];
    if (decision === 'take-over') {
      // Never a record that expired since it was read: a drop may have found its partition all expired.
      const {
        rows: [taken],
      } = await this.session.send<{ attempts: number }>(
        `UPDATE ${this.name} SET
           state = 'in_flight', owner = $3, fingerprint = $4, attempts = attempts + 1,
           lease_expires_at = ${msFromNow('$5')}, expires_at = ${msFromNow('$6')}
         WHERE scope = $1 AND key = $2 AND tableoid = $7::oid AND ctid = $8::tid AND expires_at > clock_timestamp()
         RETURNING attempts`,
        place,
        { runner },
      );
      if (taken) return { status: 'claimed', ref, attempt: taken.attempts, takenOver: true };
    }
    // An expired record starts over in the current partition, so that its old one empties out.
    await this.session.send(
      `WITH gone AS (DELETE FROM ${this.name} WHERE scope = $1 AND key = $2 AND tableoid = $7::oid AND ctid = $8::tid)
       INSERT INTO ${this.name} ${NEW_RECORD.columns} VALUES (${NEW_RECORD.values})`,
      place,
      { runner },
    );
    return { status: 'claimed', ref, attempt: 1, takenOver: false };
  }
}

/** The fields of a PostgreSQL error that name what it is about. */
interface ErrorFields {
  table?: string;
  constraint?: string;
}

/**
 * PostgreSQL found no partition of the records table for a new row: told by SQLSTATE and table, whatever the
 * language of the message (lc_messages). A CHECK constraint of the table fails with the same SQLSTATE, but names itself.
 */
function isNoPartition(error: unknown): boolean {
  const fields = ((error as { driverError?: ErrorFields } | undefined)?.driverError ?? error) as ErrorFields | undefined;
  return sqlState(error) === SQL_STATE.checkViolation && fields?.table === IDEMPOTENCY_PARTITIONED_TABLE && !fields.constraint;
}
