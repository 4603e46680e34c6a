import type { MigrationInterface, QueryRunner } from 'typeorm';

/** What the webhook receivers write: the events applied, and subscriptions. */
export class CreateWebhookTables1763900000200 implements MigrationInterface {
  name = 'CreateWebhookTables1763900000200';

  async up(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`CREATE TABLE webhook_events (
      id serial PRIMARY KEY, provider text NOT NULL, event_id text NOT NULL, type text NOT NULL,
      received_at timestamptz NOT NULL DEFAULT now())`);
    await queryRunner.query(`CREATE TABLE subscriptions (id text PRIMARY KEY, status text NOT NULL, event_created bigint NOT NULL)`);
  }

  async down(queryRunner: QueryRunner): Promise<void> {
    await queryRunner.query(`DROP TABLE subscriptions, webhook_events`);
  }
}
