import type { MigrationInterface, QueryRunner } from 'typeorm';
import { IDEMPOTENCY_TABLE } from '../idempotency-record.entity';
import { qualifiedTableName } from '../table-name';

/** Creates the idempotency records table (the same schema as the `IdempotencyRecord` entity). */
export class CreateIdempotencyRecords1763900000000 implements MigrationInterface {
  name = 'CreateIdempotencyRecords1763900000000';

  async up(queryRunner: QueryRunner): Promise<void> {
    const table = qualifiedTableName(queryRunner.connection, IDEMPOTENCY_TABLE);
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
        CONSTRAINT "PK_idempotency_records" PRIMARY KEY ("scope", "key"),
        CONSTRAINT "idempotency_records_state_check" CHECK ("state" IN ('in_flight', 'completed'))
      )`);
    // The purge walks expired rows in batches through this index.
    await queryRunner.query(
      `CREATE INDEX IF NOT EXISTS "idempotency_records_expires_at_idx" ON ${table} ("expires_at")`,
    );
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS ${qualifiedTableName(queryRunner.connection, IDEMPOTENCY_TABLE)}`);
  }
}
