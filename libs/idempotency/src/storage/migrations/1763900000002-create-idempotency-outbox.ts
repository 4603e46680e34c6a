import { IDEMPOTENCY_OUTBOX_TABLE } from '../table-name';
import { TableMigration } from './table-migration';

/** Creates the outbox of jobs to hand to BullMQ (the `OutboxMessage` entity). */
export class CreateIdempotencyOutbox1763900000002 extends TableMigration {
  name = 'CreateIdempotencyOutbox1763900000002';
  protected readonly table = IDEMPOTENCY_OUTBOX_TABLE;

  protected create(table: string): string[] {
    return [
      `
      CREATE TABLE IF NOT EXISTS ${table} (
        "id"           bigserial   NOT NULL,
        "queue"        text        NOT NULL,
        "name"         text        NOT NULL,
        "data"         jsonb       NOT NULL,
        "options"      jsonb       NOT NULL DEFAULT '{}'::jsonb,
        "job_id"       text        NOT NULL,
        "created_at"   timestamptz NOT NULL DEFAULT clock_timestamp(),
        "sent_at"      timestamptz,
        "sends"        integer     NOT NULL DEFAULT 0,
        "processed_at" timestamptz,
        "failed_at"    timestamptz,
        "last_error"   text,
        CONSTRAINT "PK_idempotency_outbox" PRIMARY KEY ("id")
      )`,
      `CREATE UNIQUE INDEX IF NOT EXISTS "idempotency_outbox_job_id_key" ON ${table} ("job_id")`,
      // The relay reads unsent rows in id order, and sent rows not yet processed by age: these partial indexes
      // hold only those rows, so they stay small however many processed rows wait for the cleanup.
      `CREATE INDEX IF NOT EXISTS "idempotency_outbox_unsent_idx" ON ${table} ("id") WHERE "sent_at" IS NULL AND "failed_at" IS NULL`,
      `CREATE INDEX IF NOT EXISTS "idempotency_outbox_unprocessed_idx" ON ${table} ("sent_at") WHERE "processed_at" IS NULL AND "sent_at" IS NOT NULL`,
      `CREATE INDEX IF NOT EXISTS "idempotency_outbox_sent_at_idx" ON ${table} ("sent_at")`,
    ];
  }
}
