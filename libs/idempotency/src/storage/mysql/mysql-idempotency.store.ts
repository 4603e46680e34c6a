import { randomUUID } from 'node:crypto';
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
import { type PeekOutcome, peeked } from '../postgres/claim-row';
import { isDeadlock, isLockWaitEnded } from './mysql-errors';
import { purgeBatch } from './mysql-purge';
import { MYSQL_RECORDS_TABLE, MySqlRecords, PURGEABLE_RECORDS, recordId } from './mysql-records';
import { MySqlSession } from './mysql-session';
import type { DataSourceLike, EntityManagerLike } from '../typeorm-like';
import { mysqlClaimInTransaction } from './mysql-transactional-claim';
import { MYSQL_VERSIONS_TABLE, PURGEABLE_VERSIONS } from './mysql-versions';

/**
 * The store on MySQL or MariaDB, through the application's TypeORM DataSource (`type: 'mysql'` or `'mariadb'`,
 * driver mysql2; no pool of its own), with its records in `idempotency_records` (`mysqlIdempotencyMigrations`).
 * The same claim as on PostgreSQL: insert the row or lock it, decide with `decide()`, update; completion,
 * release and renewal are single statements fenced on the owner token. Times come from the server's clock.
 *
 * @example
 * const store = new MySqlIdempotencyStore(dataSource);
 * const outcome = await store.claim({ scope: 'POST /orders', key: 'k1', fingerprint: null, leaseMs: 30_000, ttlMs: 86_400_000 });
 */
export class MySqlIdempotencyStore implements TransactionalIdempotencyStore {
  readonly transactional = true;
  private readonly session: MySqlSession;
  private readonly records: MySqlRecords;

  constructor(dataSource: DataSourceLike) {
    this.session = new MySqlSession(dataSource);
    this.records = new MySqlRecords(this.session);
  }

  get manager(): EntityManagerLike {
    return this.session.dataSource.manager;
  }

  /** The server's version, and whether the purge skips locked rows; read once. */
  server(): Promise<{ version: string; mariadb: boolean; skipLocked: boolean }> {
    return this.session.server();
  }

  /**
   * The fast path, then the locked path where the record must change. A lock wait is bounded by the caller's
   * deadline; one that runs out means a transaction holds the key: in flight. A deadlock victim tries again.
   */
  async claim(request: ClaimRequest): Promise<ClaimOutcome> {
    const owner = randomUUID();
    const lockWaitMs = () => (request.deadline === undefined ? undefined : request.deadline - Date.now());
    for (;;) {
      try {
        const fast = await this.records.fastClaim(request, owner, lockWaitMs());
        if (fast === 'again') continue;
        if (fast !== 'locked-path') return fast;
        return await this.session.transaction((runner) => this.records.lockedClaim(runner, request, owner, lockWaitMs()), request.deadline);
      } catch (error) {
        if (isLockWaitEnded(error)) return { status: 'in-flight', retryAfterMs: 1000 };
        if (isDeadlock(error)) continue;
        throw error;
      }
    }
  }

  async peek(request: ClaimRequest): Promise<PeekOutcome | undefined> {
    const row = await this.records.read(recordId(request.scope, request.key));
    return row ? peeked(row, request) : undefined;
  }

  claimInTransaction(
    request: ClaimRequest,
    lockTimeoutMs: number,
    idleTimeoutMs: number,
    handlerLockTimeoutMs = lockTimeoutMs,
  ): Promise<TransactionalClaimOutcome> {
    return mysqlClaimInTransaction(this.session, this.records, request, { lockTimeoutMs, idleTimeoutMs, handlerLockTimeoutMs });
  }

  complete(ref: ClaimRef, response: StoredResponse, ttlMs: number): Promise<boolean> {
    return this.records.complete(ref, response, ttlMs);
  }

  release(ref: ClaimRef): Promise<boolean> {
    return this.records.release(ref);
  }

  renew(ref: ClaimRef, leaseMs: number): Promise<boolean> {
    return this.records.renew(ref, leaseMs);
  }

  find(scope: string, key: string): Promise<IdempotencyRecordView | undefined> {
    return this.records.find(scope, key);
  }

  /** A batch of expired resource versions, then of expired records. */
  async purgeExpired(batchSize: number): Promise<number> {
    let versions = 0;
    try {
      versions = await purgeBatch(this.session, MYSQL_VERSIONS_TABLE, PURGEABLE_VERSIONS, batchSize);
    } catch (error) {
      // The table of event ordering was never created: nothing to purge there.
      if (!(error instanceof IdempotencyConfigurationError)) throw error;
    }
    return versions + (await purgeBatch(this.session, MYSQL_RECORDS_TABLE, PURGEABLE_RECORDS, batchSize));
  }
}
