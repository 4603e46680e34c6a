import { Check, Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { RecordState } from './idempotency-store';
import { IDEMPOTENCY_TABLE } from './table-name';

/**
 * One row per (scope, key): the state of a request. The migration creates the same table, so the
 * entity also works with `synchronize: true`. The store talks SQL; the entity exists for the schema.
 */
@Entity({ name: IDEMPOTENCY_TABLE })
@Index('idempotency_records_expires_at_idx', ['expiresAt'])
@Check('idempotency_records_state_check', `"state" IN ('in_flight', 'completed')`)
export class IdempotencyRecord {
  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'PK_idempotency_records' })
  scope!: string;

  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'PK_idempotency_records' })
  key!: string;

  @Column({ type: 'text' })
  state!: RecordState;

  @Column({ type: 'text', nullable: true })
  fingerprint!: string | null;

  @Column({ type: 'uuid', nullable: true })
  owner!: string | null;

  @Column({ type: 'integer', default: 1 })
  attempts!: number;

  @Column({ name: 'lease_expires_at', type: 'timestamptz', nullable: true })
  leaseExpiresAt!: Date | null;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt!: Date;

  @Column({ name: 'response_status', type: 'smallint', nullable: true })
  responseStatus!: number | null;

  @Column({ name: 'response_headers', type: 'jsonb', nullable: true })
  responseHeaders!: Array<[string, string]> | null;

  @Column({ name: 'response_body', type: 'bytea', nullable: true })
  responseBody!: Buffer | null;

  @Column({ name: 'created_at', type: 'timestamptz', default: () => 'clock_timestamp()' })
  createdAt!: Date;

  @Column({ name: 'completed_at', type: 'timestamptz', nullable: true })
  completedAt!: Date | null;
}
