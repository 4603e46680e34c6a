import { randomUUID } from 'node:crypto';
import { TransactionAbortedError } from '../../errors/transaction-aborted.error';
import type { ClaimRef, ClaimRequest, StoredResponse, TransactionalClaim, TransactionalClaimOutcome } from '../idempotency-store';
import { connectWithin } from '../postgres/postgres-session';
import type { TransactionWaits } from '../postgres/transactional-claim';
import { explainMySqlSetupError, isDeadlock, isLockWaitEnded } from './mysql-errors';
import type { MySqlRecords } from './mysql-records';
import type { QueryRunnerLike } from '../typeorm-like';
import { lockWaitSeconds, type MySqlServer, type MySqlSession } from './mysql-session';
import { advanceVersion } from './mysql-versions';

/**
 * Opens a transaction on a pooled connection and claims (scope, key) in it; unless the outcome is `claimed`, the
 * transaction is closed again. The connection and the lock on the key come within `lockTimeoutMs`; a deadlock
 * (InnoDB rolled the claim back) is tried again within it.
 */
export async function mysqlClaimInTransaction(
  session: MySqlSession,
  records: MySqlRecords,
  request: ClaimRequest,
  waits: TransactionWaits,
): Promise<TransactionalClaimOutcome> {
  const deadline = Date.now() + waits.lockTimeoutMs;
  const server = await session.server();
  for (;;) {
    const runner = session.dataSource.createQueryRunner('master');
    await connectWithin(runner, deadline - Date.now());
    const settings = new SessionSettings(server, runner);
    try {
      await settings.apply(waits);
      await runner.startTransaction();
      const outcome = await records.lockedClaim(runner, request, randomUUID(), deadline - Date.now());
      if (outcome.status !== 'claimed') {
        await runner.commitTransaction();
        await settings.restore();
        await runner.release();
        return outcome;
      }
      return { ...outcome, claim: heldClaim(session, records, runner, settings, outcome.ref) };
    } catch (error) {
      await endQuietly(runner, settings);
      if (isLockWaitEnded(error)) return { status: 'in-flight', retryAfterMs: 1000 };
      if (isDeadlock(error) && Date.now() < deadline) continue;
      throw explainMySqlSetupError(error);
    }
  }
}

/**
 * The pooled connection's settings for the time of a claim, put back as they were before it returns to the pool:
 * - `innodb_lock_wait_timeout`: each lock wait of the handler's statements, in whole seconds (rounded up).
 * - `idle_transaction_timeout` (MariaDB): a transaction left idle that long by a stuck handler is ended by the
 *   server, which frees the row and the connection. MySQL has no such setting: the module's `maxLease` timer alone
 *   rolls it back.
 * - READ COMMITTED for the transaction: no gap locks, as on PostgreSQL.
 * One statement each way, which also keeps the previous values in user variables of the session.
 */
class SessionSettings {
  private applied = false;
  /** The runner's own query, taken before the claim watches the handler's statements: it runs whatever failed. */
  private readonly query: (sql: string) => Promise<unknown>;

  constructor(
    private readonly server: MySqlServer,
    runner: QueryRunnerLike,
  ) {
    this.query = runner.query.bind(runner);
  }

  private get names(): Record<'lockWait' | 'isolation' | 'idle', string | undefined> {
    return {
      lockWait: 'innodb_lock_wait_timeout',
      isolation: this.server.mariadb ? 'tx_isolation' : 'transaction_isolation',
      idle: this.server.idleTransactionTimeout ? 'idle_transaction_timeout' : undefined,
    };
  }

  async apply(waits: TransactionWaits): Promise<void> {
    const values = {
      lockWait: String(lockWaitSeconds(waits.handlerLockTimeoutMs)),
      isolation: `'READ-COMMITTED'`,
      idle: String(Math.max(1, Math.ceil(waits.idleTimeoutMs / 1000))),
    };
    const saves: string[] = [];
    const sets: string[] = [];
    for (const [name, variable] of Object.entries(this.names) as Array<[keyof typeof values, string | undefined]>) {
      if (!variable) continue;
      saves.push(`@nestjs_idempotency_${name} = @@session.${variable}`);
      sets.push(`SESSION ${variable} = ${values[name]}`);
    }
    this.applied = true;
    await this.query(`SET ${[...saves, ...sets].join(', ')}`);
  }

  async restore(): Promise<void> {
    if (!this.applied) return;
    this.applied = false;
    const sets = Object.entries(this.names)
      .filter(([, variable]) => variable)
      .map(([name, variable]) => `SESSION ${variable} = @nestjs_idempotency_${name}`);
    await this.query(`SET ${sets.join(', ')}`);
  }
}

/**
 * A claim holding its transaction (and its pooled connection) open across the handler. A plain object, as
 * wrappers copy its members.
 *
 * MySQL rolls back only the failed statement, where PostgreSQL refuses every later one until the transaction
 * ends. So that a handler that caught a failed statement (a unique violation answered 400) never commits half
 * its writes, the claim does as PostgreSQL: after a failed statement, the later ones fail too (a rollback to
 * a savepoint recovers), and the completion rolls everything back with `TransactionAbortedError`.
 */
function heldClaim(session: MySqlSession, records: MySqlRecords, runner: QueryRunnerLike, settings: SessionSettings, ref: ClaimRef): TransactionalClaim {
  const failure = watchFailures(runner);
  const end = async (work: () => Promise<void>) => {
    try {
      await work();
    } catch (error) {
      await endQuietly(runner, settings);
      throw error;
    }
    await settings.restore().finally(() => runner.release());
  };
  return {
    ref,
    manager: runner.manager,
    complete: (response: StoredResponse, ttlMs: number) =>
      end(async () => {
        const failed = failure.cause();
        if (failed !== undefined) throw new TransactionAbortedError({ cause: failed });
        // No row: the record is not this claim's any more. Nothing may commit without its answer.
        if (!(await records.complete(ref, response, ttlMs, runner))) {
          throw new Error("The claim's record could not be completed: it expired while the handler ran. Nothing was committed.");
        }
        await runner.commitTransaction();
      }),
    rollback: () => end(() => runner.rollbackTransaction()),
    advanceVersion: async (resource: string, version: string, ttlMs: number) => {
      try {
        return await advanceVersion(session, runner, ref.scope, resource, version, ttlMs);
      } catch (error) {
        if (isLockWaitEnded(error) || isDeadlock(error)) return 'busy';
        throw error;
      }
    },
  };
}

/** Makes every statement after a failed one fail, until a rollback to a savepoint; tells the first failure. */
function watchFailures(runner: QueryRunnerLike): { cause(): unknown } {
  let failed: unknown;
  const query = runner.query.bind(runner);
  runner.query = (async (sql: string, parameters?: unknown[], structured?: boolean) => {
    const recovering = /^\s*ROLLBACK TO SAVEPOINT/i.test(sql);
    if (failed !== undefined && !/^\s*ROLLBACK/i.test(sql)) {
      throw new Error("A statement failed earlier in the claim's transaction: the statements after it are refused until the transaction ends.", {
        cause: failed,
      });
    }
    try {
      const result: unknown = await query(sql, parameters, structured as true);
      if (recovering) failed = undefined;
      return result;
    } catch (error) {
      failed ??= error;
      throw error;
    }
  }) as QueryRunnerLike['query'];
  return { cause: () => failed };
}

/** Ends a transaction that failed and gives the connection back; the original error is what the caller reports. */
async function endQuietly(runner: QueryRunnerLike, settings: SessionSettings): Promise<void> {
  if (runner.isReleased) return;
  if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
  await settings.restore().catch(() => undefined);
  await runner.release();
}
