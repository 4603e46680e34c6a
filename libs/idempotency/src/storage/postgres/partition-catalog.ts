import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { QueryRunnerLike } from '../typeorm-like';
import { IdempotencyConfigurationError } from '../../errors/configuration.errors';
import { qualifiedTableName } from '../table-name';
import { IDEMPOTENCY_PARTITIONED_TABLE } from './partitioning.options';
import type { PostgresSession } from './postgres-session';
import { SQL_STATE, sqlState } from './sql-state';

/** `DETACH PARTITION ... CONCURRENTLY` and `FINALIZE` came with PostgreSQL 14. */
const MIN_SERVER_VERSION_NUM = 140000;
/** Attaching a partition blocks neither reads nor writes; it may queue behind another instance's attach or detach. */
const ATTACH_LOCK_TIMEOUT = '5s';
/**
 * How long a detach, its FINALIZE and the drop may run, waiting for locks and (a detach) for every transaction
 * that began before it and touched the table. A transaction left open would otherwise keep the purge, and its
 * pooled connection, waiting for as long as it stays open; a detach cut off stays pending, and a later purge finishes it.
 */
export const DETACH_TIMEOUT = '5s';
const DETACH_TIMEOUT_MS = 5000;

/** A detach or a drop that ran past DETACH_TIMEOUT, and was cancelled. */
export class DetachTimeoutError extends Error {}
/** The comment on each partition the store makes: once detached, it tells the table from any other of a similar name. */
const PARTITION_MARK = `A partition of ${IDEMPOTENCY_PARTITIONED_TABLE}, made by nestjs-idempotency: dropped once all its records have expired.`;

export interface Partition {
  /** Qualified and quoted. */
  name: string;
  from: Date;
  to: Date;
  /** Its range is over: no record is created in it any more. */
  past: boolean;
  /** A concurrent detach was cut off half-way: the partition is out of every new query, and blocks any other detach. */
  detaching: boolean;
}

/** The partitions of the partitioned records table as PostgreSQL's catalog has them, and the DDL that changes them. */
export class PartitionCatalog {
  private readonly logger = new Logger('Idempotency');
  /** Whether the server is recent enough; asked once. */
  private serverChecked?: Promise<void>;

  constructor(
    private readonly session: PostgresSession,
    /** The partitioned table, qualified and quoted. */
    readonly table: string,
  ) {}

  /**
   * The partitions with a range (a DEFAULT partition, which the store never makes, is left alone), oldest first.
   * Their bounds are read back from text, written in ISO and UTC whatever the connection's DateStyle and
   * TimeZone: in DateStyle Postgres with TimeZone Asia/Kolkata, 'IST' would be read back as Israel's time.
   */
  async partitions(): Promise<Partition[]> {
    return this.session.transaction(async (runner) => {
      await runner.query(`SELECT set_config('DateStyle', 'ISO', true), set_config('TimeZone', 'UTC', true)`);
      const { rows } = await this.session.send<Partition>(
        `SELECT format('%I.%I', n.nspname, c.relname) AS name, bound[1]::timestamptz AS "from", bound[2]::timestamptz AS "to",
                bound[2]::timestamptz <= clock_timestamp() AS past, i.inhdetachpending AS detaching
         FROM pg_inherits i
         JOIN pg_class c ON c.oid = i.inhrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \\(''([^'']*)''\\) TO \\(''([^'']*)''\\)') AS bound
         WHERE i.inhparent = $1::regclass AND bound IS NOT NULL
         ORDER BY 2`,
        [this.table],
        { runner, prepared: false },
      );
      return rows;
    });
  }

  /**
   * A table like the parent, then attached: `CREATE TABLE ... PARTITION OF` would take an ACCESS EXCLUSIVE
   * lock of the parent, and stop every claim while it waits for it; ATTACH takes a lock that blocks no
   * reads or writes. The partition's indexes are made by the attach, on an empty table. Its comment marks it as
   * the store's, for after it is detached. Sent as plain text: named, each would stay prepared on every connection.
   */
  async create(from: Date, to: Date): Promise<void> {
    const name = qualifiedTableName(this.session.dataSource, `${IDEMPOTENCY_PARTITIONED_TABLE}_p${stamp(from)}`);
    await this.session.transaction(async (runner) => {
      await runner.query(`SET LOCAL lock_timeout = '${ATTACH_LOCK_TIMEOUT}'`);
      await runner.query(`CREATE TABLE ${name} (LIKE ${this.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`);
      await runner.query(`COMMENT ON TABLE ${name} IS '${PARTITION_MARK}'`);
      await runner.query(`ALTER TABLE ${this.table} ATTACH PARTITION ${name} FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`);
    });
  }

  /** Detaches the partition (`CONCURRENTLY`, or `FINALIZE` to end a detach that was cut off). */
  async detach(partition: Partition, mode: 'CONCURRENTLY' | 'FINALIZE'): Promise<void> {
    await this.outsideTransaction(`ALTER TABLE ${this.table} DETACH PARTITION ${partition.name} ${mode}`);
  }

  async drop(name: string): Promise<void> {
    await this.outsideTransaction(`DROP TABLE IF EXISTS ${name}`);
  }

  /**
   * Tables the store made as partitions (they bear its comment) that are no partition any more: what a drop cut
   * off between its detach and its drop left behind. Named exactly as the store names partitions; a table of a
   * similar name (a backup, say) is never one.
   */
  async leftovers(): Promise<string[]> {
    const { rows } = await this.session.send<{ name: string }>(
      `SELECT format('%I.%I', n.nspname, c.relname) AS name
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = $1::regclass)
         AND c.relkind = 'r' AND NOT c.relispartition AND c.relname ~ $2 AND obj_description(c.oid, 'pg_class') = $3`,
      [this.table, `^${IDEMPOTENCY_PARTITIONED_TABLE}_p[0-9]{8}t[0-9]{4}$`, PARTITION_MARK],
      { prepared: false },
    );
    return rows.map((row) => row.name);
  }

  async allExpired(name: string, runner?: QueryRunnerLike): Promise<boolean> {
    const [{ expired }] = (await (runner ?? this.session.dataSource).query(
      `SELECT coalesce(max(expires_at) <= clock_timestamp(), true) AS expired FROM ${name}`,
    )) as Array<{ expired: boolean }>;
    return expired;
  }

  /**
   * Whether every record of the partition has expired, read under a SHARE lock of it taken without waiting
   * (NOWAIT: fails with a lock timeout while a write to it is in progress).
   */
  async allExpiredUnderShareLock(partition: Partition): Promise<boolean> {
    return this.session.transaction(async (runner) => {
      await runner.query(`LOCK TABLE ${partition.name} IN SHARE MODE NOWAIT`);
      return this.allExpired(partition.name, runner);
    });
  }

  /**
   * The rows of a partition from its statistics, which autovacuum keeps: counting them would read the whole
   * partition. Counted only where it was never vacuumed nor analyzed.
   */
  async countRows(partition: Partition): Promise<number> {
    const { dataSource } = this.session;
    const [{ estimate }]: Array<{ estimate: number }> = await dataSource.query(`SELECT reltuples::float8 AS estimate FROM pg_class WHERE oid = $1::regclass`, [
      partition.name,
    ]);
    if (estimate >= 0) return Math.round(estimate);
    const [{ rows }]: Array<{ rows: number }> = await dataSource.query(`SELECT count(*)::int AS rows FROM ${partition.name}`);
    return rows;
  }

  /** The database clock, in ms since the epoch. */
  async now(): Promise<number> {
    const {
      rows: [{ now }],
    } = await this.session.send<{ now: number }>(`SELECT (extract(epoch FROM clock_timestamp()) * 1000)::float8 AS now`, []);
    return now;
  }

  /** Asked once: the store needs PostgreSQL 14 or later. */
  checkServerVersion(): Promise<void> {
    this.serverChecked ??= this.session.dataSource

      .query<Array<{ version: number; name: string }>>(
        `SELECT current_setting('server_version_num')::int AS version, current_setting('server_version') AS name`,
      )
      .then(
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

  /**
   * One statement outside a transaction (a concurrent detach refuses to run in one), cancelled once it has run for
   * DETACH_TIMEOUT. No session setting bounds it: behind a pooler in transaction mode (PgBouncer) a `SET
   * lock_timeout`, the statement and the `RESET` each go to whichever server connection is free, so the statement
   * would wait without bound and the setting stay on a server connection for other clients. The statement bears a
   * tag of its own, by which another pooled connection finds it and cancels it.
   */
  private async outsideTransaction(statement: string): Promise<void> {
    const tag = `/* nestjs-idempotency ${randomUUID()} */`;
    let cancelling: Promise<void> | undefined;
    const timer = setTimeout(() => {
      // The statement's own end is what the purge reports; a failed cancel only explains why it waited on.
      cancelling = this.cancel(tag).catch((error: unknown) => {
        this.logger.warn(`Could not cancel ${statement} after ${DETACH_TIMEOUT}: ${(error as Error).message}`);
      });
    }, DETACH_TIMEOUT_MS);
    try {
      await this.session.dataSource.query(`${tag} ${statement}`);
    } catch (error) {
      if (cancelling && sqlState(error) === SQL_STATE.queryCanceled) {
        throw new DetachTimeoutError(`${statement} ran past ${DETACH_TIMEOUT}, and was cancelled`, { cause: error });
      }
      throw error;
    } finally {
      clearTimeout(timer);
      await cancelling;
    }
  }

  /**
   * Cancels the statement that bears `tag` while it still runs (same role: no privilege needed). Like any
   * cancel request, one sent as the statement ends may reach what its server connection runs next; the tag
   * narrows that to the moment between reading pg_stat_activity and the signal.
   */
  private async cancel(tag: string): Promise<void> {
    await this.session.send(
      `SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE state = 'active' AND starts_with(query, $1) AND pid <> pg_backend_pid()`,
      [tag],
      { prepared: false },
    );
  }
}

/** The start of a partition in its name: UTC, to the minute. */
function stamp(time: Date): string {
  const iso = time.toISOString();
  return `${iso.slice(0, 10).replaceAll('-', '')}t${iso.slice(11, 16).replace(':', '')}`;
}
