import type { MigrationLike, QueryRunnerLike } from '../typeorm-like';
import { qualifiedTableName } from '../table-name';

/**
 * The migration of one table of the library: created with its indexes (if absent), dropped on the way down.
 * The table is qualified with the DataSource's schema.
 */
export abstract class TableMigration implements MigrationLike {
  abstract readonly name: string;
  protected abstract readonly table: string;

  /** The statements that create the table, then its indexes, given its qualified name. */
  protected abstract create(table: string): string[];

  async up(queryRunner: QueryRunnerLike): Promise<void> {
    for (const statement of this.create(qualifiedTableName(queryRunner.dataSource, this.table))) await queryRunner.query(statement);
  }

  async down(queryRunner: QueryRunnerLike): Promise<void> {
    await queryRunner.query(`DROP TABLE IF EXISTS ${qualifiedTableName(queryRunner.dataSource, this.table)}`);
  }
}
