import { randomUUID } from 'node:crypto';
import type { EntityManagerLike } from '../typeorm-like';
import { IdempotencyConfigurationError } from '../../errors/configuration.errors';
import type {
  ClaimOutcome,
  ClaimRef,
  ClaimRequest,
  IdempotencyRecordView,
  StoredResponse,
  TransactionalClaimOutcome,
  TransactionalIdempotencyStore,
} from '../idempotency-store';
import { IDEMPOTENCY_VERSIONS_TABLE, qualifiedTableName } from '../table-name';
import { CLAIM_COLUMNS, type ClaimRow, type PeekOutcome, peeked } from './claim-row';
import type { PostgresSession } from './postgres-session';
import { RECORD_VIEW_COLUMNS, type RecordViewRow, toView } from './record-view';
import { completeParams, purgeSql } from './record-statements';
import type { RecordsTable } from './records-table';
import { claimInTransaction } from './transactional-claim';

/**
 * A PostgreSQL store: the store contract on a {@link RecordsTable}, which says how a claim is made on its
 * table, through a {@link PostgresSession} on the application's DataSource. Completion, release and renewal
 * are single statements fenced on the owner token.
 */
export class PostgresIdempotencyStore implements TransactionalIdempotencyStore {
  readonly transactional = true;
  private readonly versions: string;

  protected constructor(
    protected readonly session: PostgresSession,
    protected readonly records: RecordsTable,
  ) {
    this.versions = qualifiedTableName(session.dataSource, IDEMPOTENCY_VERSIONS_TABLE);
  }

  get manager(): EntityManagerLike {
    return this.session.dataSource.manager;
  }

  claim(request: ClaimRequest): Promise<ClaimOutcome> {
    return this.records.withRoom(() => this.records.claim(request, randomUUID()));
  }

  async peek(request: ClaimRequest): Promise<PeekOutcome | undefined> {
    const {
      rows: [row],
    } = await this.session.send<ClaimRow>(`SELECT ${CLAIM_COLUMNS} FROM ${this.records.name} WHERE scope = $1 AND key = $2`, [request.scope, request.key]);
    return row ? peeked(row, request) : undefined;
  }

  claimInTransaction(
    request: ClaimRequest,
    lockTimeoutMs: number,
    idleTimeoutMs: number,
    handlerLockTimeoutMs = lockTimeoutMs,
  ): Promise<TransactionalClaimOutcome> {
    const waits = { lockTimeoutMs, idleTimeoutMs, handlerLockTimeoutMs };
    return this.records.withRoom(() => claimInTransaction(this.session, this.records, this.versions, request, waits));
  }

  async complete(ref: ClaimRef, response: StoredResponse, ttlMs: number): Promise<boolean> {
    return (await this.session.send(this.records.owned.complete, completeParams(ref, response, ttlMs))).count === 1;
  }

  async release(ref: ClaimRef): Promise<boolean> {
    return (await this.session.send(this.records.owned.release, [ref.scope, ref.key, ref.owner])).count === 1;
  }

  async renew(ref: ClaimRef, leaseMs: number): Promise<boolean> {
    return (await this.session.send(this.records.owned.renew, [ref.scope, ref.key, ref.owner, leaseMs])).count === 1;
  }

  async find(scope: string, key: string): Promise<IdempotencyRecordView | undefined> {
    const {
      rows: [row],
    } = await this.session.send<RecordViewRow>(
      `SELECT ${RECORD_VIEW_COLUMNS} FROM ${this.records.name} WHERE scope = $1 AND key = $2 AND expires_at > clock_timestamp()`,
      [scope, key],
    );
    return row && toView(row);
  }

  /** Expired resource versions in a batch, then expired records. */
  async purgeExpired(batchSize: number): Promise<number> {
    const versions = await this.purgeExpiredVersions(batchSize);
    return versions + (await this.records.purge(batchSize));
  }

  /** One batch of expired resource versions; none where the table of event ordering was never created. */
  protected async purgeExpiredVersions(batchSize: number): Promise<number> {
    try {
      return (await this.session.send(purgeSql(this.versions), [batchSize], { prepared: false })).count;
    } catch (error) {
      if (error instanceof IdempotencyConfigurationError) return 0;
      throw error;
    }
  }
}
