import { TableMigration } from '../migrations/table-migration';

/** The columns of a table of records (the same as the `IdempotencyRecord` entity's). */
const RECORD_COLUMNS_DDL = `
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
        "completed_at"     timestamptz,`;

/**
 * The migration of a table of records (`idempotency_records`, `idempotency_partitioned_records`): its
 * constraints and index are named after it. `partitioned`: by range of `created_at`, which the primary key must
 * then hold (a unique index of a partitioned table holds the partition key).
 */
export abstract class RecordsTableMigration extends TableMigration {
  protected abstract readonly partitioned: boolean;

  protected create(table: string): string[] {
    const primaryKey = this.partitioned ? `"scope", "key", "created_at"` : `"scope", "key"`;
    return [
      `
      CREATE TABLE IF NOT EXISTS ${table} (${RECORD_COLUMNS_DDL}
        CONSTRAINT "PK_${this.table}" PRIMARY KEY (${primaryKey}),
        CONSTRAINT "${this.table}_state_check" CHECK ("state" IN ('in_flight', 'completed'))
      )${this.partitioned ? ' PARTITION BY RANGE ("created_at")' : ''}`,
      // The purge walks expired rows in batches through this index; whether a partition holds nothing but expired
      // records is read from it, in a moment.
      `CREATE INDEX IF NOT EXISTS "${this.table}_expires_at_idx" ON ${table} ("expires_at")`,
    ];
  }
}
