import { Column, Entity, Index, PrimaryColumn } from 'typeorm';
import { IDEMPOTENCY_VERSIONS_TABLE } from './table-name';

/**
 * The newest version of a resource applied by an ordered route (`order` on `@Idempotent()`), per scope.
 * An event older than it is skipped. Rows expire like records, `ttl` after their last change.
 */
@Entity({ name: IDEMPOTENCY_VERSIONS_TABLE })
@Index('idempotency_versions_expires_at_idx', ['expiresAt'])
export class IdempotencyVersion {
  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'PK_idempotency_versions' })
  scope!: string;

  @PrimaryColumn({ type: 'text', primaryKeyConstraintName: 'PK_idempotency_versions' })
  resource!: string;

  /** Any decimal number: epoch milliseconds, a sequence, a provider's `created` seconds. */
  @Column({ type: 'numeric' })
  version!: string;

  @Column({ name: 'expires_at', type: 'timestamptz' })
  expiresAt!: Date;
}
