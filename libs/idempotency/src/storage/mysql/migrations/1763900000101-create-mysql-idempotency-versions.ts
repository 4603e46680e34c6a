import { BINARY_TEXT, MySqlTableMigration } from './mysql-table-migration';

/**
 * Creates the table of resource versions used by ordered routes on the MySQL store (the `MySqlIdempotencyVersion`
 * entity). A version is DECIMAL(65, 30): 35 digits before the point, 30 after.
 */
export class CreateMySqlIdempotencyVersions1763900000101 extends MySqlTableMigration {
  name = 'CreateMySqlIdempotencyVersions1763900000101';
  protected readonly table = 'idempotency_versions';
  protected readonly create = `
    CREATE TABLE IF NOT EXISTS \`idempotency_versions\` (
      \`id\`         BINARY(32)     NOT NULL,
      \`scope\`      TEXT           ${BINARY_TEXT} NOT NULL,
      \`resource\`   TEXT           ${BINARY_TEXT} NOT NULL,
      \`version\`    DECIMAL(65,30) NOT NULL,
      \`expires_at\` DATETIME(6)    NOT NULL,
      CONSTRAINT \`PK_idempotency_versions\` PRIMARY KEY (\`id\`),
      INDEX \`idempotency_versions_expires_at_idx\` (\`expires_at\`)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin`;
}
