import { Column, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';
import { IDEMPOTENCY_OUTBOX_TABLE } from '../storage/table-name';

/**
 * A job to hand to BullMQ, written in the same transaction as the business writes that call for it. The
 * relay sends unsent rows and marks them sent; an idempotent consumer marks them processed.
 */
@Entity({ name: IDEMPOTENCY_OUTBOX_TABLE })
@Index('idempotency_outbox_unsent_idx', ['id'], { where: '"sent_at" IS NULL AND "failed_at" IS NULL' })
@Index('idempotency_outbox_unprocessed_idx', ['sentAt'], { where: '"processed_at" IS NULL AND "sent_at" IS NOT NULL' })
@Index('idempotency_outbox_sent_at_idx', ['sentAt'])
export class OutboxMessage {
  @PrimaryGeneratedColumn({ type: 'bigint', primaryKeyConstraintName: 'PK_idempotency_outbox' })
  id!: string;

  @Column({ type: 'text' })
  queue!: string;

  @Column({ type: 'text' })
  name!: string;

  @Column({ type: 'jsonb' })
  data!: unknown;

  /** BullMQ job options (attempts, backoff, delay, ...), without `jobId`. */
  @Column({ type: 'jsonb', default: () => `'{}'::jsonb` })
  options!: Record<string, unknown>;

  /** The BullMQ job id: BullMQ drops a second add with the same id while the job exists. */
  @Index('idempotency_outbox_job_id_key', { unique: true })
  @Column({ name: 'job_id', type: 'text' })
  jobId!: string;

  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'clock_timestamp()' })
  createdAt!: Date;

  @Column({ name: 'sent_at', type: 'timestamptz', nullable: true })
  sentAt!: Date | null;

  /** How many times the relay sent it (more than 1 after a relay crash or a redelivery). */
  @Column({ name: 'sends', type: 'integer', default: 0 })
  sends!: number;

  @Column({ name: 'processed_at', type: 'timestamptz', nullable: true })
  processedAt!: Date | null;

  /** Set when BullMQ refused the job for what it is (a bad option); such a row is no longer sent. */
  @Column({ name: 'failed_at', type: 'timestamptz', nullable: true })
  failedAt!: Date | null;

  @Column({ name: 'last_error', type: 'text', nullable: true })
  lastError!: string | null;
}
