import { Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
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
  notPast,
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
/** PostgreSQL's SQLSTATE for a table whose state refuses the command: a detach while another is pending. */
const OBJECT_NOT_IN_PREREQUISITE_STATE = '55000';
/** `DETACH PARTITION ... CONCURRENTLY` and `FINALIZE` came with PostgreSQL 14. */
const MIN_SERVER_VERSION_NUM = 140000;
/** Attaching a partition blocks neither reads nor writes; it may queue behind another instance's attach or detach. */
const ATTACH_LOCK_TIMEOUT = '5s';
/**
 * How long a detach, its FINALIZE and the drop may wait: for locks, and (a detach) for every transaction that
 * began before it and touched the table. PostgreSQL bounds both waits by lock_timeout. A transaction left open
 * would otherwise keep the purge, and its pooled connection, waiting for as long as it stays open; a detach cut
 * off stays pending, and a later purge finishes it.
 */
const DETACH_LOCK_TIMEOUT = '5s';
/**
 * The check before a drop takes its SHARE lock without waiting (a lock request in the queue would hold back
 * every completion and renewal, which write to every partition): this many tries, this far apart, then the next purge.
 */
const DROP_LOCK_TRIES = 5;
const DROP_LOCK_PAUSE_MS = 20;
/**
 * How long a claim in lease mode waits for its key's lock. Claims in lease mode hold it for milliseconds; one in
 * transaction mode holds it for its handler's whole run, and the key is then in flight.
 */
const KEY_LOCK_TIMEOUT = '1s';
/** The Retry-After of a claim that found its key's lock held past KEY_LOCK_TIMEOUT, as the plain store answers in transaction mode. */
const KEY_BUSY_RETRY_MS = 1000;
/** The comment on each partition the store makes: once detached, it tells the table from any other of a similar name. */
const PARTITION_MARK = `A partition of ${IDEMPOTENCY_PARTITIONED_TABLE}, made by nestjs-idempotency: dropped once all its records have expired.`;
/** The advisory lock of one (scope, key), which every claim of the key takes: the key's hash, seeded with the scope's. */
const KEY_LOCK = `pg_advisory_xact_lock(hashtextextended($2::text, hashtextextended($1::text, 0)))`;

/**
 * The lookup's row, with where it lies: its partition's oid and its ctid, to change that very row (which the
 * lookup locked, so it cannot move). Not its `created_at`, whose text depends on DateStyle and TimeZone.
 */
type LockedRow = ClaimRow & { inserted: boolean; partition: number | string | null; position: string | null };

interface Partition {
  /** Qualified and quoted. */
  name: string;
  from: Date;
  to: Date;
  /** Its range is over: no record is created in it any more. */
  past: boolean;
  /** A concurrent detach was cut off half-way: the partition is out of every new query, and blocks any other detach. */
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
 * lock of the partition (taken without waiting: with writes in progress it tries again later), then detaches
 * it `CONCURRENTLY` (no lock that blocks reads or writes; a wait for older transactions past 5 s leaves it
 * pending, for a later purge to finish) and drops it. It deletes no rows one by one, and returns how many rows
 * the dropped partitions held (from their statistics, which autovacuum keeps). The table has no DEFAULT
 * partition: PostgreSQL cannot detach concurrently beside one. PostgreSQL 14 or later.
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
  /** Whether the server is recent enough; asked once. */
  private serverChecked?: Promise<void>;

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
        notPast(request.deadline);
        await runner.startTransaction(isolation);
        // The setting first (a materialized CTE runs before the query that reads it): the wait for the key is bounded.
        await this.send(
          `WITH settings AS MATERIALIZED (SELECT set_config('lock_timeout', $3, true)) SELECT ${KEY_LOCK} FROM settings`,
          [request.scope, request.key, KEY_LOCK_TIMEOUT],
          runner,
        );
        const outcome = await this.claimLocked(runner, request, randomUUID());
        await runner.commitTransaction();
        return outcome;
      } catch (error) {
        if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
        if (isLockTimeout(error)) return { status: 'in-flight', retryAfterMs: KEY_BUSY_RETRY_MS };
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
         SELECT tableoid AS partition, ctid::text AS position, ${CLAIM_COLUMNS} FROM ${this.table}
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
         WHERE scope = $1 AND key = $2 AND tableoid = $7::oid AND ctid = $8::tid AND expires_at > clock_timestamp()
         RETURNING attempts`,
        [...params, row.partition, row.position],
        runner,
      );
      if (taken) return { status: 'claimed', ref, attempt: taken.attempts, takenOver: true };
    }
    // An expired record starts over in the current partition, so that its old one empties out.
    await this.send(
      `WITH gone AS (DELETE FROM ${this.table} WHERE scope = $1 AND key = $2 AND tableoid = $7::oid AND ctid = $8::tid)
       INSERT INTO ${this.table} (scope, key, state, fingerprint, owner, lease_expires_at, expires_at)
       VALUES ($1, $2, 'in_flight', $4, $3, ${msFromNow('$5')}, ${msFromNow('$6')})`,
      [...params, row.partition, row.position],
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
   * Expired resource versions in a batch, then the partitions: tables a drop cut off left behind dropped, those
   * ahead created, those whose records have all expired dropped. Returns the versions deleted and the rows the
   * dropped partitions held.
   */
  override async purgeExpired(batchSize: number): Promise<number> {
    const versions = await this.purgeExpiredVersions(batchSize);
    await this.checkServerVersion();
    // Before the partitions are made: a table left behind bears the name of the partition it was.
    await this.dropLeftovers();
    await this.preparePartitions();
    return versions + (await this.dropExpiredPartitions());
  }

  /**
   * The purge without making partitions ahead, for whoever does not know the app's interval (the command-line
   * tool): drops what the app's purge would drop, and leaves the making of partitions to the app.
   */
  async dropExpired(batchSize: number): Promise<number> {
    const versions = await this.purgeExpiredVersions(batchSize);
    await this.checkServerVersion();
    await this.dropLeftovers();
    return versions + (await this.dropExpiredPartitions());
  }

  /**
   * Makes partitions so that every time from now to the end of the `ahead`-th interval after the current one
   * falls in one. The time is walked from now: a partition (of any width: the interval may have changed since it
   * was made) is stepped over to its end, and a gap is filled from the interval's grid point before it (or the end
   * of the partition before it) up to the next grid point (or the start of the next partition).
   */
  async preparePartitions(): Promise<void> {
    await this.checkServerVersion();
    const {
      rows: [{ now }],
    } = await this.send<{ now: number }>(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`, []);
    const until = (Math.floor(now / this.intervalMs) + this.ahead + 1) * this.intervalMs;
    let partitions = await this.partitions();
    for (let time = now; time < until; ) {
      const covering = partitions.find((partition) => covers(partition, time));
      if (covering) {
        time = covering.to.getTime();
        continue;
      }
      const { from, to } = gap(time, partitions, this.intervalMs);
      try {
        await this.createPartition(new Date(from), new Date(to));
      } catch (error) {
        // Another instance may have made one meanwhile: the walk goes on from what there is now.
        if (!(await this.partitions()).some((partition) => covers(partition, time))) throw error;
      }
      partitions = await this.partitions();
    }
  }

  /**
   * A table like the parent, then attached: `CREATE TABLE ... PARTITION OF` would take an ACCESS EXCLUSIVE
   * lock of the parent, and stop every claim while it waits for it; ATTACH takes a lock that blocks no
   * reads or writes. The partition's indexes are made by the attach, on an empty table. Its comment marks it as
   * the store's, for after it is detached.
   */
  private async createPartition(from: Date, to: Date): Promise<void> {
    const name = qualifiedTableName(this.dataSource, `${IDEMPOTENCY_PARTITIONED_TABLE}_p${stamp(from)}`);
    await this.ddl([
      `SET LOCAL lock_timeout = '${ATTACH_LOCK_TIMEOUT}'`,
      `CREATE TABLE ${name} (LIKE ${this.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
      `COMMENT ON TABLE ${name} IS '${PARTITION_MARK}'`,
      `ALTER TABLE ${this.table} ATTACH PARTITION ${name} FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`,
    ]);
  }

  /**
   * Drops the partitions whose range is over and whose records have all expired; returns the rows they held.
   * PostgreSQL detaches one partition of a table at a time: a detach left pending is finished first, and while
   * one stays pending no other begins.
   */
  private async dropExpiredPartitions(): Promise<number> {
    const partitions = await this.partitions();
    let dropped = 0;
    for (const partition of partitions.filter((partition) => partition.detaching)) {
      const rows = await this.finishDetach(partition);
      if (rows === undefined) return dropped;
      dropped += rows;
    }
    for (const partition of partitions.filter((partition) => partition.past && !partition.detaching)) {
      const rows = await this.dropIfExpired(partition);
      if (rows === undefined) return dropped;
      dropped += rows;
    }
    return dropped;
  }

  /**
   * Drops a partition whose range is over once every record in it has expired. Returns the rows it held; 0 when
   * it is kept (a live record, or writes in progress: the next purge tries again); `undefined` when its detach
   * was cut off and stays pending.
   */
  private async dropIfExpired(partition: Partition): Promise<number | undefined> {
    // A quick look first, from the expires_at index, without a lock.
    if (!(await this.allExpired(partition))) return 0;
    const rows = await this.countRows(partition);
    if (!(await this.confirmAllExpired(partition))) return 0;
    if (!(await this.detach(partition, 'CONCURRENTLY'))) return undefined;
    await this.dropTable(partition.name);
    return rows;
  }

  /**
   * Whether every record of the partition has expired, read under a SHARE lock of it: granted once no write to
   * it is in progress, it holds back new ones until the answer. After it, no write can make a record of the
   * partition live again: completion and renewal leave expired records alone, a take-over never finds one, and
   * new records go to the current partition. The lock is never waited for (NOWAIT): a request in the queue
   * would hold back every completion and renewal behind it, as they write to every partition.
   */
  private async confirmAllExpired(partition: Partition): Promise<boolean> {
    for (let tries = 1; ; tries++) {
      try {
        return await this.inTransaction(async (runner) => {
          await runner.query(`LOCK TABLE ${partition.name} IN SHARE MODE NOWAIT`);
          return this.allExpired(partition, runner);
        });
      } catch (error) {
        if (!isLockTimeout(error)) throw error;
        if (tries === DROP_LOCK_TRIES) return false;
        await sleep(DROP_LOCK_PAUSE_MS);
      }
    }
  }

  /**
   * Finishes a detach that was cut off (the partition is already out of every new query) and drops the
   * partition, provided its range is over and its records have all expired, as they were when the purge began
   * the detach. Any other pending detach was begun by hand, and is left to whoever began it. Returns the rows
   * dropped, or `undefined` when the detach stays pending.
   */
  private async finishDetach(partition: Partition): Promise<number | undefined> {
    if (!partition.past || !(await this.allExpired(partition))) {
      this.logger.warn(
        `A detach of the partition ${partition.name} of the idempotency records is pending, but ` +
          `${partition.past ? 'it holds records that have not expired' : 'its range is not over'}. Claims no longer see its records, ` +
          `and no other partition can be detached meanwhile: finish it by hand (ALTER TABLE ${this.table} DETACH PARTITION ` +
          `${partition.name} FINALIZE), then rename the table if its records are still needed.`,
      );
      return undefined;
    }
    const rows = await this.countRows(partition);
    if (!(await this.detach(partition, 'FINALIZE'))) return undefined;
    await this.dropTable(partition.name);
    return rows;
  }

  /**
   * Detaches the partition (`CONCURRENTLY`, or `FINALIZE` to end a detach that was cut off). False when it is not
   * done: it waited past DETACH_LOCK_TIMEOUT, or another detach of the table is under way. A later purge goes on.
   */
  private async detach(partition: Partition, mode: 'CONCURRENTLY' | 'FINALIZE'): Promise<boolean> {
    try {
      await this.outsideTransaction(`ALTER TABLE ${this.table} DETACH PARTITION ${partition.name} ${mode}`);
      return true;
    } catch (error) {
      if (isLockTimeout(error)) {
        this.logger.warn(
          `Detaching the partition ${partition.name} of the idempotency records waited ${DETACH_LOCK_TIMEOUT} for the transactions ` +
            'that began before it (is one left open?); a later purge finishes it.',
        );
        return false;
      }
      // Another instance detached it first: as good.
      if (!(await this.partitions()).some((other) => other.name === partition.name)) return true;
      // Another instance's detach, of this partition or another, is under way.
      if (sqlState(error) === OBJECT_NOT_IN_PREREQUISITE_STATE) return false;
      throw error;
    }
  }

  /**
   * Tables the store made as partitions (they bear its comment) that are no partition any more, and hold only
   * expired records: what a drop cut off between its detach and its drop left behind. Named exactly as the store
   * names partitions; a table of a similar name (a backup, say) is never one.
   */
  private async dropLeftovers(): Promise<void> {
    const { rows: leftovers } = await this.send<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1::regclass)
         AND c.relkind = 'r' AND NOT c.relispartition AND c.relname ~ $2 AND obj_description(c.oid, 'pg_class') = $3`,
      [this.table, `^${IDEMPOTENCY_PARTITIONED_TABLE}_p[0-9]{8}t[0-9]{4}$`, PARTITION_MARK],
      undefined,
      false,
    );
    for (const { name } of leftovers) {
      if (await this.allExpired({ name })) await this.dropTable(name);
    }
  }

  private async dropTable(name: string): Promise<void> {
    await this.outsideTransaction(`DROP TABLE IF EXISTS ${name}`);
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

  /**
   * The partitions with a range (a DEFAULT partition, which this store never makes, is left alone), oldest first.
   * Their bounds are read back from text, written in ISO and UTC whatever the connection's DateStyle and
   * TimeZone: in DateStyle Postgres with TimeZone Asia/Kolkata, 'IST' would be read back as Israel's time.
   */
  private async partitions(): Promise<Partition[]> {
    return this.inTransaction(async (runner) => {
      await runner.query(`SELECT set_config('DateStyle', 'ISO', true), set_config('TimeZone', 'UTC', true)`);
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
        runner,
        false,
      );
      return rows;
    });
  }

  /** Statements for the partitions, in one transaction, sent as plain text (named, each would stay prepared on every connection). */
  private async ddl(statements: string[]): Promise<void> {
    await this.inTransaction(async (runner) => {
      for (const statement of statements) await runner.query(statement);
    });
  }

  /**
   * One statement outside a transaction (a concurrent detach refuses to run in one), with lock_timeout set on
   * its connection meanwhile, and reset before the connection goes back to the pool.
   */
  private async outsideTransaction(statement: string): Promise<void> {
    const runner = this.dataSource.createQueryRunner('master');
    try {
      await runner.query(`SET lock_timeout = '${DETACH_LOCK_TIMEOUT}'`);
      try {
        await runner.query(statement);
      } finally {
        await runner.query('RESET lock_timeout');
      }
    } finally {
      await runner.release();
    }
  }

  /** Asked once: the store needs PostgreSQL 14 or later. */
  private checkServerVersion(): Promise<void> {
    this.serverChecked ??= this.dataSource.query(`SELECT current_setting('server_version_num')::int AS version, current_setting('server_version') AS name`).then(
      ([{ version, name }]: Array<{ version: number; name: string }>) => {
        if (version >= MIN_SERVER_VERSION_NUM) return;
        throw new IdempotencyConfigurationError(
          `The partitioned store (option partitioning) needs PostgreSQL 14 or later, which detaches a partition without ` +
            `stopping the claims (DETACH PARTITION ... CONCURRENTLY); this server is PostgreSQL ${name}. Upgrade it, or leave out partitioning.`,
        );
      },
      (error: unknown) => {
        this.serverChecked = undefined;
        throw error;
      },
    );
    return this.serverChecked;
  }

  /** Runs a claim; if no partition takes the new record (no purge ran for `ahead` intervals), makes them and claims again. */
  private async withPartition<T>(claim: () => Promise<T>): Promise<T> {
    try {
      return await claim();
    } catch (error) {
      if (!isNoPartition(error)) throw error;
      await this.preparePartitions();
      return claim();
    }
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
  return sqlState(error) === CHECK_VIOLATION && fields?.table === IDEMPOTENCY_PARTITIONED_TABLE && !fields.constraint;
}

function covers(partition: Partition, time: number): boolean {
  return partition.from.getTime() <= time && time < partition.to.getTime();
}

/**
 * The range of a new partition for `time`, which no partition covers: from the interval's grid point at or
 * before it (or the end of a partition after that point), to the next grid point (or the start of a partition before it).
 */
function gap(time: number, partitions: Partition[], intervalMs: number): { from: number; to: number } {
  const gridPoint = Math.floor(time / intervalMs) * intervalMs;
  const from = Math.max(gridPoint, ...partitions.map((partition) => partition.to.getTime()).filter((end) => end <= time));
  const to = Math.min(gridPoint + intervalMs, ...partitions.map((partition) => partition.from.getTime()).filter((start) => start > time));
  return { from, to };
}

/** The start of a partition in its name: UTC, to the minute. */
function stamp(time: Date): string {
  const iso = time.toISOString();
  return `${iso.slice(0, 10).replaceAll('-', '')}t${iso.slice(11, 16).replace(':', '')}`;
}
