import type { MigrationInterface, QueryRunner } from 'typeorm';
import { IDEMPOTENCY_PARTITIONED_TABLE } from '../partitioned-typeorm-idempotency.store';
import { qualifiedTableName } from '../table-name';

/**
 * Creates the time-partitioned records table of `PartitionedTypeOrmIdempotencyStore` (module option
 * `partitioning`): the columns of `idempotency_records`, partitioned by range of `created_at`. The store
 * creates the partitions themselves, ahead of time. Not part of `idempotencyMigrations`: add it where the
 * option is used. (TypeORM's `synchronize` cannot create a partitioned table.)
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'postgres', url, migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010] })
 */
export class CreatePartitionedIdempotencyRecords1763900000010 implements MigrationInterface {
  name = 'CreatePartitionedIdempotencyRecords1763900000010';

  async up(queryRunner: QueryRunner): Promise<void> {
    const table = qualifiedTableName(queryRunner.connection, IDEMPOTENCY_PARTITIONED_TABLE);
    // A unique index of a partitioned table must hold the partition key: (scope, key) alone cannot be
    // unique here. The store keeps one row per (scope, key) by serializing claims of a key on an advisory lock.
    await queryRunner.query(`
      CREATE TABLE IF NOT EXISTS ${table} (
        "scope"            text        NOT NULL,
        "key"              text        NOT NULL,
        "state"            text        NOT NULL,
        "fingerprint"      text,
        "owner"            uuid,
        "attempts"         integer     NOT NULL DEFAULT 1,
        "lease_expires_at" timestamptz,
        "expires_at"       timestamptz NOT NULL,
        "response_status"  smallint,
        "response_headers" jsonb,
        "response_body"    bytea,
        "created_at"       timestamptz NOT NULL DEFAULT clock_timestamp(),
        "completed_at"     timestamptz,
        CONSTRAINT "PK_idempotency_partitioned_records" PRIMARY KEY ("scope", "key", "created_at"),
        CONSTRAINT "idempotency_partitioned_records_state_check" CHECK ("state" IN ('in_flight', 'completed'))
      ) PARTITION BY RANGE ("created_at")`);
    // Whether a partition holds nothing but expired records is read from this index, in a moment.
    await queryRunner.query(
      `CREATE INDEX IF NOT EXISTS "idempotency_partitioned_records_expires_at_idx" ON ${table} ("expires_at")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS ${qualifiedTableName(queryRunner.connection, IDEMPOTENCY_PARTITIONED_TABLE)}`);
  }
}
