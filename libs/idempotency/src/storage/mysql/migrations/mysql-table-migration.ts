import type { MigrationLike, QueryRunnerLike } from '../../typeorm-like';

/**
 * The migration of one table of the MySQL store: created with its indexes (if absent), dropped on the way down.
 * The table lives in the DataSource's database.
 */
export abstract class MySqlTableMigration implements MigrationLike {
  abstract readonly name: string;
  protected abstract readonly table: string;
  /** The statement that creates the table with its keys. */
  protected abstract readonly create: string;

  async up(queryRunner: QueryRunnerLike): Promise<void> {
    await queryRunner.query(this.create);
  }

  async down(queryRunner: QueryRunnerLike): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS \`${this.table}\``);
  }
}

/** Text compared byte for byte, whatever the server's default collation: keys that differ in case are two keys. */
export const BINARY_TEXT = 'CHARACTER SET utf8mb4 COLLATE utf8mb4_bin';
