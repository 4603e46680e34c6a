import type { MigrationInterface, QueryRunner } from 'typeorm';

/** When an order shipped, and each shipment recorded for it (one per `order.shipped` event handled). */
export class CreateShipments1763900000500 implements MigrationInterface {
  name = 'CreateShipments1763900000500';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`ALTER TABLE orders ADD COLUMN shipped_at timestamptz`);
    await queryRunner.query(`CREATE TABLE shipments (
      id serial PRIMARY KEY, order_id integer NOT NULL REFERENCES orders (id), carrier text NOT NULL,
      tracking text NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE shipments`);
    await queryRunner.query(`ALTER TABLE orders DROP COLUMN shipped_at`);
  }
}
