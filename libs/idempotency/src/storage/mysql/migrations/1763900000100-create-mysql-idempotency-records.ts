import { BINARY_TEXT, MySqlTableMigration } from './mysql-table-migration';

/**
 * Creates the records table of the MySQL store (the same schema as the `MySqlIdempotencyRecord` entity). The
 * primary key is sha-256 of (scope, key); times are UTC, to the microsecond.
 */
export class CreateMySqlIdempotencyRecords1763900000100 extends MySqlTableMigration {
  name = 'CreateMySqlIdempotencyRecords1763900000100';
  protected readonly table = 'idempotency_records';
  protected readonly create = `
    CREATE TABLE IF NOT EXISTS \`idempotency_records\` (
      \`id\`               BINARY(32)  NOT NULL,
      \`scope\`            TEXT        ${BINARY_TEXT} NOT NULL,
      \`key\`              TEXT        ${BINARY_TEXT} NOT NULL,
      \`state\`            VARCHAR(16) CHARACTER SET ascii NOT NULL,
      \`fingerprint\`      TEXT        ${BINARY_TEXT} NULL,
      \`owner\`            CHAR(36)    CHARACTER SET ascii NULL,
      \`attempts\`         INT         NOT NULL DEFAULT 1,
      \`lease_expires_at\` DATETIME(6) NULL,
      \`expires_at\`       DATETIME(6) NOT NULL,
      \`response_status\`  SMALLINT    NULL,
      \`response_headers\` LONGTEXT    ${BINARY_TEXT} NULL,
      \`response_body\`    LONGBLOB    NULL,
      \`created_at\`       DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
      \`completed_at\`     DATETIME(6) NULL,
      CONSTRAINT \`PK_idempotency_records\` PRIMARY KEY (\`id\`),
      INDEX \`idempotency_records_expires_at_idx\` (\`expires_at\`),
      CONSTRAINT \`idempotency_records_state_check\` CHECK (\`state\` IN ('in_flight', 'completed'))
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;
}
