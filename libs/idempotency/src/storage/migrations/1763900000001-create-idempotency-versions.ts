import { IDEMPOTENCY_VERSIONS_TABLE } from '../table-name';
import { TableMigration } from './table-migration';

/** Creates the table of resource versions used by ordered routes (the `IdempotencyVersion` entity). */
export class CreateIdempotencyVersions1763900000001 extends TableMigration {
  name = 'CreateIdempotencyVersions1763900000001';
  protected readonly table = IDEMPOTENCY_VERSIONS_TABLE;

  protected create(table: string): string[] {
    return [
      `
      CREATE TABLE IF NOT EXISTS ${table} (
        "scope"      text        NOT NULL,
        "resource"   text        NOT NULL,
        "version"    numeric     NOT NULL,
        "expires_at" timestamptz NOT NULL,
        CONSTRAINT "PK_idempotency_versions" PRIMARY KEY ("scope", "resource")
      )`,
      `CREATE INDEX IF NOT EXISTS "idempotency_versions_expires_at_idx" ON ${table} ("expires_at")`,
    ];
  }
}
