import type { DataSource } from 'typeorm';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { loadOptionalPeer } from '../optional-peer';
import { IDEMPOTENCY_TABLE, qualifiedTableName } from '../storage/table-name';
import { IDEMPOTENCY_PARTITIONED_TABLE } from '../storage/postgres/partitioning.options';
import { PartitionedTypeOrmIdempotencyStore } from '../storage/postgres/partitioned-typeorm-idempotency.store';
import { RECORD_VIEW_COLUMNS, type RecordViewRow, toView } from '../storage/postgres/record-view';
import { SQL_STATE, sqlState } from '../storage/postgres/sql-state';
import { TypeOrmIdempotencyStore } from '../storage/postgres/typeorm-idempotency.store';
import { CliFailure } from './cli-errors';
import { describeError, redactUrl } from './format';
import type { FoundRecords, PurgeProgress, RecordSource, RecordStats } from './record-source';

/** SQLSTATEs that mean the server answered but refused the connection: a wrong database, role or password. */
const REFUSED_LOGIN: Record<string, string> = {
  '3D000': 'the database does not exist',
  '28000': 'the role is not allowed to log in',
  '28P01': 'the password is wrong',
};

/**
 * The records in PostgreSQL, through a DataSource of the tool's own on the app's database and schema.
 * A scoped look-up and the purge go through {@link TypeOrmIdempotencyStore}, as the app does; what the
 * store contract does not offer (a key in every scope, counts) is plain SQL on the same table.
 */
export class PostgresRecords implements RecordSource {
  readonly description: string;
  private readonly table: string;
  private readonly store: TypeOrmIdempotencyStore;

  private readonly tableName: string;

  private constructor(
    private readonly dataSource: DataSource,
    url: string,
    schema: string | undefined,
    partitioned: boolean,
  ) {
    this.tableName = partitioned ? IDEMPOTENCY_PARTITIONED_TABLE : IDEMPOTENCY_TABLE;
    this.description = `PostgreSQL at ${redactUrl(url)}${schema ? ` (schema ${schema})` : ''}${partitioned ? `, ${this.tableName}` : ''}`;
    this.table = qualifiedTableName(dataSource, this.tableName);
    // The partitioned store's find() reads its table, as the plain one's reads idempotency_records.
    this.store = partitioned ? new PartitionedTypeOrmIdempotencyStore(dataSource) : new TypeOrmIdempotencyStore(dataSource);
  }

  /** Connects, or fails with what to check. */
  static async open(url: string, schema: string | undefined, partitioned = false): Promise<PostgresRecords> {
    // Loaded here: with --redis, the tool runs where TypeORM is not installed.
    const { DataSource } = await loadOptionalPeer<typeof import('typeorm')>('typeorm', 'nestjs-idempotency on PostgreSQL (--url)');
    const dataSource = new DataSource({
      type: 'postgres',
      url,
      schema,
      applicationName: 'nestjs-idempotency-cli',
      connectTimeoutMS: 5000,
      poolSize: 2,
      logging: false,
    });
    try {
      await dataSource.initialize();
    } catch (error) {
      throw connectionFailure(error, url);
    }
    return new PostgresRecords(dataSource, url, schema, partitioned);
  }

  async find(key: string, options: { scope?: string; limit: number }): Promise<FoundRecords> {
    return this.explained(async () => {
      const now = await this.now();
      if (options.scope !== undefined) {
        const record = await this.store.find(options.scope, key);
        return { now, records: record ? [record] : [], truncated: false };
      }
      // The primary key is (scope, key): a key alone is found by reading the whole table.
      const rows: RecordViewRow[] = await this.dataSource.query(
        `SELECT ${RECORD_VIEW_COLUMNS}
         FROM ${this.table} WHERE key = $1 AND expires_at > clock_timestamp()
         ORDER BY created_at, scope LIMIT $2`,
        [key, options.limit + 1],
      );
      return { now, records: rows.slice(0, options.limit).map(toView), truncated: rows.length > options.limit };
    });
  }

  async stats(options: { topScopes: number; topStuck: number }): Promise<RecordStats> {
    return this.explained(async () => {
      const now = await this.now();
      // Every query judges by the same instant, so that a record is counted in one state only.
      const live = `expires_at > $1`;
      const stuck = `state = 'in_flight' AND (lease_expires_at IS NULL OR lease_expires_at <= $1)`;
      const [states]: Array<Record<'in_flight' | 'stuck' | 'completed' | 'expired', number>> = await this.dataSource.query(
        `SELECT count(*) FILTER (WHERE ${live} AND state = 'in_flight' AND lease_expires_at > $1)::float8 AS in_flight,
                count(*) FILTER (WHERE ${live} AND ${stuck})::float8 AS stuck,
                count(*) FILTER (WHERE ${live} AND state = 'completed')::float8 AS completed,
                count(*) FILTER (WHERE NOT (${live}))::float8 AS expired
         FROM ${this.table}`,
        [now],
      );
      const scopes: Array<{ scope: string; live: number; in_flight: number; stuck: number; completed: number; scopes: number }> = await this.dataSource.query(
        `SELECT scope, count(*)::float8 AS live,
                  count(*) FILTER (WHERE state = 'in_flight' AND lease_expires_at > $1)::float8 AS in_flight,
                  count(*) FILTER (WHERE ${stuck})::float8 AS stuck,
                  count(*) FILTER (WHERE state = 'completed')::float8 AS completed,
                  (count(*) OVER ())::float8 AS scopes
           FROM ${this.table} WHERE ${live}
           GROUP BY scope ORDER BY live DESC, scope LIMIT $2`,
        [now, options.topScopes],
      );
      const oldest: Array<{ scope: string; key: string; attempts: number; created_at: Date; lease_expires_at: Date | null }> = await this.dataSource.query(
        `SELECT scope, key, attempts, created_at, lease_expires_at FROM ${this.table}
           WHERE ${live} AND ${stuck}
           ORDER BY lease_expires_at NULLS FIRST, created_at LIMIT $2`,
        [now, options.topStuck],
      );
      return {
        now,
        states: { inFlight: states.in_flight, stuck: states.stuck, completed: states.completed, expired: states.expired },
        scopes: scopes.map((row) => ({ scope: row.scope, live: row.live, inFlight: row.in_flight, stuck: row.stuck, completed: row.completed })),
        scopeCount: scopes[0]?.scopes ?? 0,
        oldestStuck: oldest.map((row) => ({
          scope: row.scope,
          key: row.key,
          attempts: row.attempts,
          createdAt: row.created_at,
          leaseExpiredAt: row.lease_expires_at,
        })),
      };
    });
  }

  async purge(batchSize: number, onBatch?: (progress: PurgeProgress) => void): Promise<PurgeProgress> {
    // The app's purge also makes partitions ahead, at its interval, which only the app knows: here only the drops.
    const purgeOnce =
      this.store instanceof PartitionedTypeOrmIdempotencyStore ? this.store.dropExpired.bind(this.store) : this.store.purgeExpired.bind(this.store);
    return this.explained(async () => {
      // As IdempotencyService.purgeExpired(): batches until one comes back short.
      const progress: PurgeProgress = { deleted: 0, batches: 0 };
      for (;;) {
        const deleted = await purgeOnce(batchSize);
        progress.deleted += deleted;
        progress.batches += 1;
        onBatch?.(progress);
        if (deleted < batchSize) return progress;
      }
    });
  }

  async close(): Promise<void> {
    await this.dataSource.destroy();
  }

  /** The database clock: leases and expiry are judged by it, as the app judges them. */
  private async now(): Promise<Date> {
    const [row]: Array<{ now: Date }> = await this.dataSource.query('SELECT clock_timestamp() AS now');
    return row.now;
  }

  /** Turns a missing table or a lost connection into a message that says what to check. */
  private async explained<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      const code = sqlState(error) ?? sqlState((error as { cause?: unknown }).cause);
      if (code === SQL_STATE.undefinedTable || code === SQL_STATE.undefinedColumn) {
        const schema = (this.dataSource.options as { schema?: string }).schema;
        throw new CliFailure(
          `${this.description} has no ${this.tableName} table ${schema ? `in schema ${schema}` : 'in its search_path (public)'}, ` +
            `or an older one (${describeError(error)}). Pass --schema with the schema of the app's DataSource, ` +
            "or run the app's migrations (...idempotencyMigrations) first.",
          { cause: error },
        );
      }
      if (error instanceof IdempotencyConfigurationError) throw new CliFailure(error.message, { cause: error });
      if (isConnectionError(error)) throw connectionFailure(error, this.description);
      throw error;
    }
  }
}

function isConnectionError(error: unknown): boolean {
  const code = sqlState(error);
  return code !== undefined && (/^E[A-Z]+$/.test(code) || code in REFUSED_LOGIN || code.startsWith('08'));
}

function connectionFailure(error: unknown, where: string): CliFailure {
  const code = sqlState(error);
  const reason = code && REFUSED_LOGIN[code] ? `${REFUSED_LOGIN[code]}: ${describeError(error)}` : describeError(error);
  const target = /^postgres(ql)?:/.test(where) ? `PostgreSQL at ${redactUrl(where)}` : where;
  return new CliFailure(`Cannot connect to ${target} (${reason}). Check --url (or DATABASE_URL) and that the server is running.`, { cause: error });
}
