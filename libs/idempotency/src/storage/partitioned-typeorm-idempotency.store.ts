import { Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { DataSource, QueryRunner } from 'typeorm';
import { type Duration, toMilliseconds } from '../duration';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import type { ClaimOutcome, ClaimRef, ClaimRequest } from './idempotency-store';
import { qualifiedTableName } from './table-name';
import {
  answer,
  CLAIM_COLUMNS,
  type ClaimRow,
  decide,
  isLockTimeout,
  milliseconds,
  msFromNow,
  sqlState,
  TypeOrmIdempotencyStore,
  type TypeOrmIdempotencyStoreOptions,
} from './typeorm-idempotency.store';

export const IDEMPOTENCY_PARTITIONED_TABLE = 'idempotency_partitioned_records';

/** Module option `partitioning`: records in a table partitioned by time, whose old partitions are dropped whole. */
export interface PartitioningOptions {
  /**
   * The time one partition covers (by the records' creation time): a whole number of minutes. Default `'1d'`.
   * A claim looks its key up in every partition, so keep `ttl / interval` small (a few partitions).
   */
  interval?: Duration;
  /** How many partitions are kept ready after the current one. Default 2. */
  ahead?: number;
}

export interface PartitionedTypeOrmIdempotencyStoreOptions extends TypeOrmIdempotencyStoreOptions, PartitioningOptions {}

const CHECK_VIOLATION = '23514';
/**
 * How long the check before a drop may wait for the writes in progress on the partition; meanwhile it
 * holds back new writes to it (completions and renewals look in every partition). Past it, the next purge tries again.
 */
const DROP_LOCK_TIMEOUT = '100ms';
/** Attaching a partition blocks neither reads nor writes; it may queue behind another instance's attach or detach. */
const ATTACH_LOCK_TIMEOUT = '5s';
/** The advisory lock of one (scope, key), which every claim of the key takes: the key's hash, seeded with the scope's. */
const KEY_LOCK = `pg_advisory_xact_lock(hashtextextended($2::text, hashtextextended($1::text, 0)))`;

/** The lookup's row, with `created_at` as text: it is given back to find the row again, to the microsecond. */
type LockedRow = ClaimRow & { inserted: boolean; created: string | null };

interface Partition {
  /** Qualified and quoted. */
  name: string;
  from: Date;
  to: Date;
  /** Its range is over: no record is created in it any more. */
  past: boolean;
  /** A concurrent detach was interrupted half-way. */
  detaching: boolean;
}

/**
 * The PostgreSQL store on a table partitioned by creation time (`idempotency_partitioned_records`), for
 * volumes where deleting expired rows one by one costs too much: a partition whose records have all
 * expired is dropped whole (one of a million rows in a third of a second, with next to no WAL).
 *
 * A unique index of a partitioned table must hold the partition key, so (scope, key) is not unique in the
 * table by itself. Claims keep it unique: each takes an advisory lock on its key (`pg_advisory_xact_lock`)
 * in a transaction, and only then, in a new statement (a new snapshot under READ COMMITTED), looks the
 * key up in every partition and inserts it if absent. A record that starts over after it expired moves to
 * the current partition, so old partitions only empty out. Completion, release, renewal and `find()` work
 * by (scope, key) across partitions; completion and renewal never touch an expired record, so a partition
 * whose records have all expired stays so.
 *
 * The purge creates the partitions ahead (as does the start of the app, and a claim that finds none), and
 * drops a partition whose range is over once every record in it has expired: it checks that under a SHARE
 * lock of the partition (which waits for writes in progress, at most 100 ms), then detaches it
 * `CONCURRENTLY` (no lock that blocks reads or writes) and drops it. It deletes no rows one by one, and
 * returns how many rows the dropped partitions held (from their statistics, which autovacuum keeps). The
 * table has no DEFAULT partition: PostgreSQL cannot detach concurrently beside one.
 *
 * @example
 * IdempotencyModule.forRoot({ ttl: '24h', partitioning: { interval: '1d' } })
 * // or by hand:
 * const store = new PartitionedTypeOrmIdempotencyStore(dataSource, { interval: '1d' });
 */
export class PartitionedTypeOrmIdempotencyStore extends TypeOrmIdempotencyStore implements OnApplicationBootstrap {
  private readonly logger = new Logger('Idempotency');
  private readonly intervalMs: number;
  private readonly ahead: number;

  constructor(dataSource: DataSource, options: PartitionedTypeOrmIdempotencyStoreOptions = {}) {
    super(dataSource, options);
    this.intervalMs = toMilliseconds(options.interval ?? '1d', 'partitioning.interval');
    if (this.intervalMs < 60_000 || this.intervalMs % 60_000 !== 0) {
      throw new IdempotencyConfigurationError(
        `partitioning.interval must be a whole number of minutes, at least '1m', not ${JSON.stringify(options.interval)}. ` +
          `'1d' suits the default ttl of 24h.`,
      );
    }
    this.ahead = options.ahead ?? 2;
    if (!Number.isInteger(this.ahead) || this.ahead < 1) {
      throw new IdempotencyConfigurationError(`partitioning.ahead must be a whole number of partitions, at least 1, not ${String(options.ahead)}.`);
    }
  }

  protected override recordsTableName(): string {
    return IDEMPOTENCY_PARTITIONED_TABLE;
  }

  protected override missingTableFix(): string {
    return (
      'The partitioned store (option partitioning) needs its own table: add CreatePartitionedIdempotencyRecords1763900000010 ' +
      'to the DataSource migrations and run them (synchronize cannot create a partitioned table).'
    );
  }

  /** Creates the partitions ahead; an unreachable database only warns (the purge and the first claim make them later). */
  async onApplicationBootstrap(): Promise<void> {
    try {
      await this.preparePartitions();
    } catch (error) {
      if (error instanceof IdempotencyConfigurationError) throw error;
      this.logger.warn(`Creating the partitions of the idempotency records failed: ${(error as Error).message}`);
    }
  }

  override async claim(request: ClaimRequest): Promise<ClaimOutcome> {
    return this.withPartition(async () => {
      const runner = this.dataSource.createQueryRunner();
      const isolation = (await this.isReadCommittedByDefault()) ? undefined : 'READ COMMITTED';
      await runner.connect();
      try {
        await runner.startTransaction(isolation);
        await this.send(`SELECT ${KEY_LOCK}`, [request.scope, request.key], runner);
        const outcome = await this.claimLocked(runner, request, randomUUID());
        await runner.commitTransaction();
        return outcome;
      } catch (error) {
        if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
        throw error;
      } finally {
        await runner.release();
      }
    });
  }

  override claimInTransaction(...args: Parameters<TypeOrmIdempotencyStore['claimInTransaction']>): ReturnType<TypeOrmIdempotencyStore['claimInTransaction']> {
    return this.withPartition(() => super.claimInTransaction(...args));
  }

  /** In transaction mode the key's lock is held to the transaction's end: duplicates wait on it, up to their waitTimeout. */
  protected override async claimOnTransaction(
    runner: QueryRunner,
    request: ClaimRequest,
    owner: string,
    deadline: number,
    idleTimeoutMs: number,
  ): Promise<{ outcome: ClaimOutcome; lockTimeoutMs: number }> {
    const lockTimeoutMs = deadline - Date.now();
    // The settings first (a materialized CTE runs before the query that reads it): lock_timeout bounds the wait for the key.
    await this.send(
      `WITH settings AS MATERIALIZED (
         SELECT set_config('lock_timeout', $3, true), set_config('idle_in_transaction_session_timeout', $4, true)
       )
       SELECT ${KEY_LOCK} FROM settings`,
      [request.scope, request.key, milliseconds(lockTimeoutMs), milliseconds(idleTimeoutMs)],
      runner,
    );
    return { outcome: await this.claimLocked(runner, request, owner), lockTimeoutMs };
  }

  /**
   * The claim, once this transaction holds the key's lock: no other claim of the key can insert or move its
   * record until the commit. A new statement, so its snapshot sees what the previous holder committed.
   */
  private async claimLocked(runner: QueryRunner, request: ClaimRequest, owner: string): Promise<ClaimOutcome> {
    const ref: ClaimRef = { scope: request.scope, key: request.key, owner };
    const params = this.insertParams(request, owner);
    const {
      rows: [row],
    } = await this.send<LockedRow>(
      `WITH existing AS (
         SELECT created_at::text AS created, ${CLAIM_COLUMNS} FROM ${this.table}
         WHERE scope = $1 AND key = $2
         ORDER BY created_at DESC LIMIT 1
         FOR UPDATE
       ), inserted AS (
         INSERT INTO ${this.table} (scope, key, state, fingerprint, owner, lease_expires_at, expires_at)
         SELECT $1::text, $2::text, 'in_flight', $4::text, $3::uuid, ${msFromNow('$5')}, ${msFromNow('$6')}
         WHERE NOT EXISTS (SELECT 1 FROM existing)
         RETURNING 1
       )
       SELECT EXISTS (SELECT 1 FROM inserted) AS inserted, existing.* FROM (SELECT 1) AS one LEFT JOIN existing ON true`,
      params,
      runner,
    );
    if (row.inserted) return { status: 'claimed', ref, attempt: 1, takenOver: false };
    const decision = decide(row, request.fingerprint);
    const outcome = answer(row, decision);
    if (outcome) return outcome;

    if (decision === 'take-over') {
      // Never a record that expired since it was read: a drop may have found its partition all expired.
      const {
        rows: [taken],
      } = await this.send<{ attempts: number }>(
        `UPDATE ${this.table} SET
           state = 'in_flight', owner = $3, fingerprint = $4, attempts = attempts + 1,
           lease_expires_at = ${msFromNow('$5')}, expires_at = ${msFromNow('$6')}
         WHERE scope = $1 AND key = $2 AND created_at = $7::timestamptz AND expires_at > clock_timestamp()
         RETURNING attempts`,
        [...params, row.created],
        runner,
      );
      if (taken) return { status: 'claimed', ref, attempt: taken.attempts, takenOver: true };
    }
    // An expired record starts over in the current partition, so that its old one empties out.
    await this.send(
      `WITH gone AS (DELETE FROM ${this.table} WHERE scope = $1 AND key = $2 AND created_at = $7::timestamptz)
       INSERT INTO ${this.table} (scope, key, state, fingerprint, owner, lease_expires_at, expires_at)
       VALUES ($1, $2, 'in_flight', $4, $3, ${msFromNow('$5')}, ${msFromNow('$6')})`,
      [...params, row.created],
      runner,
    );
    return { status: 'claimed', ref, attempt: 1, takenOver: false };
  }

  protected override completeSql(): string {
    return `UPDATE ${this.table} SET
        state = 'completed', response_status = $4, response_headers = $5::jsonb, response_body = $6,
        completed_at = clock_timestamp(), expires_at = ${msFromNow('$7')}, lease_expires_at = NULL
      WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'in_flight' AND expires_at > clock_timestamp()`;
  }

  override async renew(ref: ClaimRef, leaseMs: number): Promise<boolean> {
    const sql = `UPDATE ${this.table}
      SET lease_expires_at = ${msFromNow('$4')}, expires_at = GREATEST(expires_at, ${msFromNow('$4')})
      WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'in_flight' AND expires_at > clock_timestamp()`;
    return (await this.send(sql, [ref.scope, ref.key, ref.owner, leaseMs])).count === 1;
  }

  /**
   * Expired resource versions in a batch, then the partitions: those ahead created, those whose records have
   * all expired dropped. Returns the versions deleted and the rows the dropped partitions held.
   */
  override async purgeExpired(batchSize: number): Promise<number> {
    const versions = await this.purgeExpiredVersions(batchSize);
    await this.preparePartitions();
    let dropped = 0;
    for (const partition of await this.partitions()) {
      if (partition.past || partition.detaching) dropped += await this.dropIfExpired(partition);
    }
    await this.dropLeftovers();
    return versions + dropped;
  }

  /** Creates the current partition and the `ahead` next ones, where missing. */
  async preparePartitions(): Promise<void> {
    const {
      rows: [{ now }],
    } = await this.send<{ now: number }>(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`, []);
    let partitions = await this.partitions();
    const current = Math.floor(now / this.intervalMs) * this.intervalMs;
    for (let from = current; from <= current + this.ahead * this.intervalMs; from += this.intervalMs) {
      if (partitions.some((partition) => covers(partition, from))) continue;
      // After a change of interval, a partition of the old width may begin before this one would end.
      const to = Math.min(from + this.intervalMs, ...partitions.map((partition) => partition.from.getTime()).filter((start) => start > from));
      try {
        await this.createPartition(new Date(from), new Date(to));
      } catch (error) {
        // Another instance may have made it meanwhile.
        partitions = await this.partitions();
        if (!partitions.some((partition) => covers(partition, from))) throw error;
      }
    }
  }

  /**
   * A table like the parent, then attached: `CREATE TABLE ... PARTITION OF` would take an ACCESS EXCLUSIVE
   * lock of the parent, and stop every claim while it waits for it; ATTACH takes a lock that blocks no
   * reads or writes. The partition's indexes are made by the attach, on an empty table.
   */
  private async createPartition(from: Date, to: Date): Promise<void> {
    const name = qualifiedTableName(this.dataSource, `${IDEMPOTENCY_PARTITIONED_TABLE}_p${stamp(from)}`);
    await this.ddl([
      `SET LOCAL lock_timeout = '${ATTACH_LOCK_TIMEOUT}'`,
      `CREATE TABLE ${name} (LIKE ${this.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
      `ALTER TABLE ${this.table} ATTACH PARTITION ${name} FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`,
    ]);
  }

  /**
   * Drops a partition whose range is over and whose records have all expired; returns the rows it held, or 0
   * when it was not dropped (a live record, or writes in progress past the lock timeout: the next purge tries again).
   */
  private async dropIfExpired(partition: Partition): Promise<number> {
    if (!partition.detaching) {
      // A quick look first, from the expires_at index, without a lock.
      if (!(await this.allExpired(partition))) return 0;
      const rows = await this.countRows(partition);
      // Under a SHARE lock the check waits for writes in progress, and holds back new ones, for a moment.
      // After it, no write can make a record of the partition live again: completion and renewal leave
      // expired records alone, a take-over never finds one, and new records go to the current partition.
      let confirmed: boolean;
      try {
        confirmed = await this.inTransaction(async (runner) => {
          await runner.query(`SET LOCAL lock_timeout = '${DROP_LOCK_TIMEOUT}'`);
          await runner.query(`LOCK TABLE ${partition.name} IN SHARE MODE`);
          return this.allExpired(partition, runner);
        });
      } catch (error) {
        if (isLockTimeout(error)) return 0;
        throw error;
      }
      if (!confirmed) return 0;
      await this.stillAttached(partition, () => this.ddl([`ALTER TABLE ${this.table} DETACH PARTITION ${partition.name} CONCURRENTLY`], false));
      await this.ddl([`DROP TABLE IF EXISTS ${partition.name}`], false);
      return rows;
    }
    // A detach that was interrupted half-way (the partition is already out of every new query): finish it.
    await this.stillAttached(partition, () => this.ddl([`ALTER TABLE ${this.table} DETACH PARTITION ${partition.name} FINALIZE`], false));
    await this.ddl([`DROP TABLE IF EXISTS ${partition.name}`], false);
    return 0;
  }

  /**
   * Tables of this store's naming that are no partition, and hold only expired records: what a drop
   * interrupted between its detach and its drop left behind.
   */
  private async dropLeftovers(): Promise<void> {
    const leftovers: Array<{ name: string }> = await this.dataSource.query(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1::regclass)
         AND c.relkind = 'r' AND NOT c.relispartition AND c.relname LIKE $2`,
      [this.table, `${IDEMPOTENCY_PARTITIONED_TABLE.replaceAll('_', '\\_')}\\_p%`],
    );
    for (const { name } of leftovers) {
      if (await this.allExpired({ name })) await this.ddl([`DROP TABLE IF EXISTS ${name}`], false);
    }
  }

  /** Runs a detach; if it fails because another instance detached the partition first, that is as good. */
  private async stillAttached(partition: Partition, detach: () => Promise<void>): Promise<void> {
    try {
      await detach();
    } catch (error) {
      if ((await this.partitions()).some((other) => other.name === partition.name)) throw error;
    }
  }

  private async allExpired(partition: Pick<Partition, 'name'>, runner?: QueryRunner): Promise<boolean> {
    const [{ expired }]: Array<{ expired: boolean }> = await (runner ?? this.dataSource).query(
      `SELECT coalesce(max(expires_at) <= clock_timestamp(), true) AS expired FROM ${partition.name}`,
    );
    return expired;
  }

  /**
   * The rows of a partition from its statistics, which autovacuum keeps: counting them would read the whole
   * partition (a third of a second per million rows). Counted only where it was never vacuumed nor analyzed.
   */
  private async countRows(partition: Partition): Promise<number> {
    const [{ estimate }]: Array<{ estimate: number }> = await this.dataSource.query(
      `SELECT reltuples::float8 AS estimate FROM pg_class WHERE oid = $1::regclass`,
      [partition.name],
    );
    if (estimate >= 0) return Math.round(estimate);
    const [{ rows }]: Array<{ rows: number }> = await this.dataSource.query(`SELECT count(*)::int AS rows FROM ${partition.name}`);
    return rows;
  }

  /** The partitions with a range (a DEFAULT partition, which this store never makes, is left alone), oldest first. */
  private async partitions(): Promise<Partition[]> {
    const { rows } = await this.send<Partition>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name, bound[1]::timestamptz AS "from", bound[2]::timestamptz AS "to",
              bound[2]::timestamptz <= clock_timestamp() AS past, i.inhdetachpending AS detaching
       FROM pg_inherits i
       JOIN pg_class c ON c.oid = i.inhrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']*)''\\) TO \\(''([^'']*)''\\)') AS bound
       WHERE i.inhparent = $1::regclass AND bound IS NOT NULL
       ORDER BY 2`,
      [this.table],
    );
    return rows;
  }

  /**
   * Statements for the partitions, sent as plain text (they name a partition: as named statements each
   * name would stay prepared on every connection). In one transaction, unless `transaction` is false
   * (a concurrent detach refuses to run in one).
   */
  private async ddl(statements: string[], transaction = true): Promise<void> {
    if (!transaction) {
      for (const statement of statements) await this.dataSource.query(statement);
      return;
    }
    await this.inTransaction(async (runner) => {
      for (const statement of statements) await runner.query(statement);
    });
  }

  /** Runs a claim; if no partition takes the new record (no purge ran for `ahead` intervals), makes them and claims again. */
  private async withPartition<T>(claim: () => Promise<T>): Promise<T> {
    try {
      return await claim();
    } catch (error) {
      if (!(sqlState(error) === CHECK_VIOLATION && /no partition/.test((error as Error).message))) throw error;
      await this.preparePartitions();
      return claim();
    }
  }
}

function covers(partition: Partition, time: number): boolean {
  return partition.from.getTime() <= time && time < partition.to.getTime();
}

/** The start of a partition in its name: UTC, to the minute. */
function stamp(time: Date): string {
  const iso = time.toISOString();
  return `${iso.slice(0, 10).replaceAll('-', '')}t${iso.slice(11, 16).replace(':', '')}`;
}
