import type { MigrationInterface, QueryRunner } from 'typeorm';
import { IDEMPOTENCY_VERSIONS_TABLE } from '../idempotency-version.entity';
import { qualifiedTableName } from '../table-name';

/** Creates the table of resource versions used by ordered routes (the `IdempotencyVersion` entity). */
export class CreateIdempotencyVersions1763900000001 implements MigrationInterface {
  name = 'CreateIdempotencyVersions1763900000001';

  async up(queryRunner: QueryRunner): Promise<void> {
    const table = qualifiedTableName(queryRunner.connection, IDEMPOTENCY_VERSIONS_TABLE);
    await queryRunner.query(`
      CREATE TABLE IF NOT EXISTS ${table} (
        "scope"      text        NOT NULL,
        "resource"   text        NOT NULL,
        "version"    numeric     NOT NULL,
        "expires_at" timestamptz NOT NULL,
        CONSTRAINT "PK_idempotency_versions" PRIMARY KEY ("scope", "resource")
      )`);
    await queryRunner.query(`CREATE INDEX IF NOT EXISTS "idempotency_versions_expires_at_idx" ON ${table} ("expires_at")`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS ${qualifiedTableName(queryRunner.connection, IDEMPOTENCY_VERSIONS_TABLE)}`);
  }
}
