import type { MigrationInterface, QueryRunner } from 'typeorm';

/** The charges of the local payment provider. */
export class CreateProviderCharges1763900000400 implements MigrationInterface {
  name = 'CreateProviderCharges1763900000400';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE provider_charges (
      id serial PRIMARY KEY, reference text NOT NULL, amount integer NOT NULL, created_at timestamptz NOT NULL DEFAULT now())`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE provider_charges`);
  }
}
