import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The shop's tables, and a catalogue to order from. */
export class CreateShop1763900000100 implements MigrationInterface {
  name = 'CreateShop1763900000100';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE products (sku text PRIMARY KEY, name text NOT NULL, stock integer NOT NULL CHECK (stock >= 0))`);
    await queryRunner.query(`CREATE TABLE orders (
      id serial PRIMARY KEY, sku text NOT NULL REFERENCES products (sku), quantity integer NOT NULL,
      paid boolean NOT NULL DEFAULT false, created_at timestamptz NOT NULL DEFAULT now())`);
    await queryRunner.query(`CREATE TABLE payments (
      id serial PRIMARY KEY, event_id text NOT NULL, type text NOT NULL, order_id integer REFERENCES orders (id),
      amount integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
    await queryRunner.query(`INSERT INTO products (sku, name, stock) VALUES
      ('widget', 'Widget', 100), ('gadget', 'Gadget', 50), ('gizmo', 'Gizmo', 10)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE payments, orders, products`);
  }
}
