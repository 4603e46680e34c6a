import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The receipts the fulfilment worker writes. */
export class CreateReceipts1763900000300 implements MigrationInterface {
  name = 'CreateReceipts1763900000300';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE receipts (
      id serial PRIMARY KEY, session_id text NOT NULL, sku text NOT NULL, quantity integer NOT NULL,
      status text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE receipts`);
  }
}
