import { IDEMPOTENCY_PARTITIONED_TABLE } from '../postgres/partitioning.options';
import { RecordsTableMigration } from '../postgres/records-ddl';

/**
 * Creates the time-partitioned records table of `PartitionedTypeOrmIdempotencyStore` (module option
 * `partitioning`): the columns of `idempotency_records`, partitioned by range of `created_at`. The store
 * creates the partitions themselves, ahead of time. Not part of `idempotencyMigrations`: add it where the
 * option is used. (TypeORM's `synchronize` cannot create a partitioned table.)
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'postgres', url, migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010] })
 */
export class CreatePartitionedIdempotencyRecords1763900000010 extends RecordsTableMigration {
  name = 'CreatePartitionedIdempotencyRecords1763900000010';
  protected readonly table = IDEMPOTENCY_PARTITIONED_TABLE;
  /** The store keeps one row per (scope, key), which the primary key cannot, by serializing claims of a key on an advisory lock. */
  protected readonly partitioned = true;
}
