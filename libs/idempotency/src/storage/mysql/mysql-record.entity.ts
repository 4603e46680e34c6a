import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import type { RecordState } from '../idempotency-store';

const BINARY_TEXT = { charset: 'utf8mb4', collation: 'utf8mb4_bin' } as const;

/**
 * One row per (scope, key) on MySQL or MariaDB: the schema of `CreateMySqlIdempotencyRecords1763900000100`, so
 * that `synchronize: true` makes the same table. The store talks SQL; the entity exists for the schema.
 */
@Entity({ name: 'idempotency_records' })
@Index('idempotency_records_expires_at_idx', ['expiresAt'])
export class MySqlIdempotencyRecord {
  /** sha-256 of (scope, key). */
  @PrimaryColumn({ type: 'binary', length: 32, primaryKeyConstraintName: 'PK_idempotency_records' })
  id!: Buffer;

  @Column({ type: 'text', ...BINARY_TEXT })
  scope!: string;

  @Column({ type: 'text', ...BINARY_TEXT })
  key!: string;

  @Column({ type: 'varchar', length: 16, charset: 'ascii' })
  state!: RecordState;

  @Column({ type: 'text', nullable: true, ...BINARY_TEXT })
  fingerprint!: string | null;

  @Column({ type: 'char', length: 36, nullable: true, charset: 'ascii' })
  owner!: string | null;

  @Column({ type: 'int', default: 1 })
  attempts!: number;

  @Column({ name: 'lease_expires_at', type: 'datetime', precision: 6, nullable: true })
  leaseExpiresAt!: Date | null;

  @Column({ name: 'expires_at', type: 'datetime', precision: 6 })
  expiresAt!: Date;

  @Column({ name: 'response_status', type: 'smallint', nullable: true })
  responseStatus!: number | null;

  /** JSON text of [name, value] pairs, in the order they were sent. */
  @Column({ name: 'response_headers', type: 'longtext', nullable: true, ...BINARY_TEXT })
  responseHeaders!: string | null;

  @Column({ name: 'response_body', type: 'longblob', nullable: true })
  responseBody!: Buffer | null;

  @Column({ name: 'created_at', type: 'datetime', precision: 6, default: () => 'CURRENT_TIMESTAMP(6)' })
  createdAt!: Date;

  @Column({ name: 'completed_at', type: 'datetime', precision: 6, nullable: true })
  completedAt!: Date | null;
}

/** The newest version of a resource applied by an ordered route, per scope, on MySQL or MariaDB. */
@Entity({ name: 'idempotency_versions' })
@Index('idempotency_versions_expires_at_idx', ['expiresAt'])
export class MySqlIdempotencyVersion {
  /** sha-256 of (scope, resource). */
  @PrimaryColumn({ type: 'binary', length: 32, primaryKeyConstraintName: 'PK_idempotency_versions' })
  id!: Buffer;

  @Column({ type: 'text', ...BINARY_TEXT })
  scope!: string;

  @Column({ type: 'text', ...BINARY_TEXT })
  resource!: string;

  @Column({ type: 'decimal', precision: 65, scale: 30 })
  version!: string;

  @Column({ name: 'expires_at', type: 'datetime', precision: 6 })
  expiresAt!: Date;
}
