import { Logger, type OnApplicationBootstrap } from '@nestjs/common';
import type { DataSourceLike } from '../typeorm-like';
import { IdempotencyConfigurationError } from '../../errors/configuration.errors';
import { qualifiedTableName } from '../table-name';
import { PartitionCatalog } from './partition-catalog';
import { PartitionMaintainer } from './partition-maintainer';
import { PartitionedRecordsTable } from './partitioned-records-table';
import { IDEMPOTENCY_PARTITIONED_TABLE, type PartitioningOptions, planPartitions } from './partitioning.options';
import { PostgresIdempotencyStore } from './postgres-idempotency.store';
import { PostgresSession } from './postgres-session';
import type { TypeOrmIdempotencyStoreOptions } from './typeorm-idempotency.store';

export interface PartitionedTypeOrmIdempotencyStoreOptions extends TypeOrmIdempotencyStoreOptions, PartitioningOptions {}

/** What a missing partitioned table is fixed with. */
const PARTITIONED_TABLE_FIX =
  'The partitioned store (option partitioning) needs its own table: add CreatePartitionedIdempotencyRecords1763900000010 ' +
  'to the DataSource migrations and run them (synchronize cannot create a partitioned table).';

/**
 * The PostgreSQL store on a table partitioned by creation time (`idempotency_partitioned_records`), for
 * volumes where deleting expired rows one by one costs too much: a partition whose records have all
 * expired is dropped whole, with next to no WAL.
 *
 * Claims take an advisory lock per key, then look the key up in every partition ({@link PartitionedRecordsTable}).
 * A {@link PartitionMaintainer} makes the partitions ahead (at the start of the app, at each purge, and when a
 * claim finds none) and drops a partition whose range is over once every record in it has expired. The purge
 * deletes no rows one by one, and returns how many rows the dropped partitions held (from their statistics,
 * which autovacuum keeps). The table has no DEFAULT partition: PostgreSQL cannot detach concurrently beside
 * one. PostgreSQL 14 or later.
 *
 * @example
 * IdempotencyModule.forRoot({ ttl: '24h', partitioning: { interval: '1d' } })
 * // or by hand:
 * const store = new PartitionedTypeOrmIdempotencyStore(dataSource, { interval: '1d' });
 */
export class PartitionedTypeOrmIdempotencyStore extends PostgresIdempotencyStore implements OnApplicationBootstrap {
  private readonly logger = new Logger('Idempotency');
  private readonly maintainer: PartitionMaintainer;

  constructor(dataSource: DataSourceLike, options: PartitionedTypeOrmIdempotencyStoreOptions = {}) {
    const plan = planPartitions(options);
    const session = new PostgresSession(dataSource, { preparedStatements: options.preparedStatements, missingTableFix: PARTITIONED_TABLE_FIX });
    const table = qualifiedTableName(dataSource, IDEMPOTENCY_PARTITIONED_TABLE);
    const maintainer = new PartitionMaintainer(new PartitionCatalog(session, table), plan);
    super(session, new PartitionedRecordsTable(session, table, maintainer));
    this.maintainer = maintainer;
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

  /** Makes the partitions for now and the `ahead` intervals after it, where they are missing. */
  preparePartitions(): Promise<void> {
    return this.maintainer.prepare();
  }

  /**
   * The purge without making partitions ahead, for whoever does not know the app's interval (the command-line
   * tool): drops what the app's purge would drop, and leaves the making of partitions to the app.
   */
  async dropExpired(batchSize: number): Promise<number> {
    const versions = await this.purgeExpiredVersions(batchSize);
    return versions + (await this.maintainer.dropExpired());
  }
}
