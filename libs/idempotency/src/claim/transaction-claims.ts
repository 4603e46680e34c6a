import { Logger } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { TransactionAbortedError } from '../errors/transaction-aborted.error';
import type { OutcomeReport } from '../observability/outcome-report';
import type { ClaimOutcome, StoredResponse, TransactionalClaim, TransactionalIdempotencyStore } from '../storage/idempotency-store';
import type { ClaimWaiter } from './claim-waiter';
import { SHORTEST_STORE_WAIT_MS, settleWithin } from './deadline';
import { type BeginRequest, recordId, type UnreportedClaim } from './held-claim';
import { KeyedGate } from './keyed-gate';

type TransactionOutcome = Exclude<ClaimOutcome, { status: 'claimed' }> | { status: 'claimed'; claim: UnreportedClaim };

/**
 * Claims in transaction mode: the row stays locked in an open transaction across the handler, whose writes
 * commit with the stored answer or not at all. Duplicates queue in-process first (`KeyedGate`), so that a burst
 * on one key costs each instance one pooled connection, not the whole pool.
 */
export class TransactionClaims {
  private readonly logger = new Logger('Idempotency');
  private readonly gate = new KeyedGate();

  constructor(
    private readonly store: TransactionalIdempotencyStore,
    private readonly waiter: ClaimWaiter,
  ) {}

  async claim(request: BeginRequest, deadline: number, report: OutcomeReport): Promise<TransactionOutcome> {
    const id = recordId(request);
    const queuedAt = performance.now();
    const turn = await this.gate.acquire(id, deadline - Date.now());
    if (!turn || turn.waited) report.waited(performance.now() - queuedAt);
    if (!turn) return { status: 'in-flight', retryAfterMs: 1000 };
    const { leave } = turn;
    if (turn.waited && deadline <= Date.now()) {
      // The turn came as the wait ran out: the first request's answer is the next request's to read.
      leave();
      return { status: 'in-flight', retryAfterMs: 1000 };
    }
    try {
      // Queued behind a duplicate that has most likely just completed: its answer is one read away,
      // without a transaction (a burst on one key then costs one cheap read per duplicate).
      const answered = turn.waited
        ? await settleWithin(
            this.store.peek(request),
            Math.max(deadline - Date.now(), SHORTEST_STORE_WAIT_MS),
            () => 'The idempotency store did not answer a read within waitTimeout.',
          )
        : undefined;
      if (answered) {
        leave();
        return answered;
      }
      const outcome = await this.store.claimInTransaction(this.heldForMaxLease(request), deadline - Date.now(), request.maxLeaseMs, request.waitTimeoutMs);
      if (outcome.status !== 'claimed') {
        leave();
        return outcome;
      }
      return { status: 'claimed', claim: this.held(outcome.claim, outcome, request, leave, report) };
    } catch (error) {
      leave();
      throw error;
    }
  }

  /**
   * The claim as the store writes it: its transaction, not a lease, keeps it (a crash closes the connection and
   * rolls it back), so its record must not expire before `maxLease` rolls it back: a record that expired under a
   * long handler could not be completed.
   */
  private heldForMaxLease(request: BeginRequest): BeginRequest {
    return request.leaseMs >= request.maxLeaseMs ? request : { ...request, leaseMs: request.maxLeaseMs };
  }

  /**
   * A claim held in an open transaction. It ends with the handler; or, for a handler still running `maxLeaseMs`
   * after the claim, by rollback, which gives the row, the connection and this process's turn on the key back.
   */
  private held(
    claim: TransactionalClaim,
    outcome: { attempt: number; takenOver: boolean },
    request: BeginRequest,
    leave: () => void,
    report: OutcomeReport,
  ): UnreportedClaim {
    const { maxLeaseMs } = request;
    let open = true;
    const end = async (work: () => Promise<void>) => {
      if (!open) throw new Error(`The claim's transaction was rolled back ${maxLeaseMs} ms after the claim (maxLease).`);
      open = false;
      clearTimeout(timer);
      try {
        await work();
      } finally {
        leave();
        this.waiter.wake(recordId(request));
      }
    };
    const timer = setTimeout(() => {
      this.logger.warn(`${report.describe()}: a transactional claim was held past maxLease (${maxLeaseMs} ms); it is rolled back.`);
      end(() => claim.rollback()).catch((error: Error) => this.logger.error(`Rolling back an expired claim failed: ${error.message}`, error.stack));
    }, maxLeaseMs);
    timer.unref();
    const release = async () => {
      if (open) await end(() => claim.rollback());
      // Rolled back, now or by the maxLease timer: the key is free either way.
      return true;
    };
    return {
      mode: 'transaction',
      ...outcome,
      manager: claim.manager,
      complete: async (response, ttlMs) => {
        let stored = true;
        await end(async () => {
          try {
            // Past this the client gets 503; a commit that lands later is replayed to its retry.
            const ms = Math.max(request.waitTimeoutMs, SHORTEST_STORE_WAIT_MS);
            await settleWithin(claim.complete(response, ttlMs), ms, () => `The idempotency store did not commit the answer within ${ms} ms.`);
          } catch (error) {
            if (!(error instanceof TransactionAbortedError) || response.status < 400) throw error;
            stored = await this.storeAfterAbort(request, response, ttlMs);
          }
        });
        return stored;
      },
      release,
      advanceVersion: claim.advanceVersion?.bind(claim),
      abandon: () => {
        release().catch((error: Error) => this.logger.error(`Rolling back an abandoned claim failed: ${error.message}`, error.stack));
      },
    };
  }

  /**
   * A 4xx over a transaction that the handler's own failed statement aborted (and the store rolled back):
   * nothing of the handler was committed, and the answer is true all the same, so it is stored in a claim of
   * its own, whose lock waits end by `waitTimeout`. This process still holds its turn on the key; an instance
   * that claimed the key meanwhile runs the request, and this answer goes out unstored (false).
   */
  private async storeAfterAbort(request: BeginRequest, response: StoredResponse, ttlMs: number): Promise<boolean> {
    const waitMs = Math.max(request.waitTimeoutMs, SHORTEST_STORE_WAIT_MS);
    const outcome = await this.store.claimInTransaction(this.heldForMaxLease(request), waitMs, request.maxLeaseMs, waitMs);
    if (outcome.status !== 'claimed') return false;
    await outcome.claim.complete(response, ttlMs);
    return true;
  }
}
