import { Logger } from '@nestjs/common';
import { LONGEST_TIMER_MS } from '../duration';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import type { OutcomeReport } from '../observability/outcome-report';
import type { ClaimOutcome, ClaimRef, IdempotencyStore } from '../storage/idempotency-store';
import type { ClaimWaiter } from './claim-waiter';
import { SHORTEST_STORE_WAIT_MS, settleWithin } from './deadline';
import { type BeginRequest, recordId, type UnreportedClaim } from './held-claim';

/** The renewal timer never fires more often than this. */
const SHORTEST_RENEWAL_MS = 250;

type LeaseOutcome = Exclude<ClaimOutcome, { status: 'claimed' }> | { status: 'claimed'; claim: UnreportedClaim };

/**
 * Claims in lease mode: a record in flight, held by an owner token while the handler runs. The lease is renewed
 * every third of it while the handler lives, never past `maxLeaseMs` after the claim, so that a slow but live
 * handler is not run twice and a stuck one is.
 */
export class LeaseClaims {
  private readonly logger = new Logger('Idempotency');

  constructor(
    private readonly store: IdempotencyStore,
    private readonly waiter: ClaimWaiter,
  ) {}

  async claim(request: BeginRequest, deadline: number, report: OutcomeReport): Promise<LeaseOutcome> {
    const outcome = await this.claimWithin(request, deadline, report);
    if (outcome.status !== 'claimed') return outcome;
    return { status: 'claimed', claim: this.held(outcome.ref, outcome.attempt, outcome.takenOver, request, report) };
  }

  /**
   * The store's claim, waited for until the request's `waitTimeout` runs out (a poll near its end still gets a
   * second): a claim queued behind a full pool, or sent to a store that stopped answering, fails as the store
   * being unavailable (503) rather than hold the request. The store is told the deadline, so that a claim still
   * queued then never starts; one that lands after it all the same is given back.
   */
  private claimWithin(request: BeginRequest, deadline: number, report: OutcomeReport): Promise<ClaimOutcome> {
    const ms = Math.min(Math.max(deadline - Date.now(), SHORTEST_STORE_WAIT_MS), LONGEST_TIMER_MS);
    const { scope, key, fingerprint, leaseMs, ttlMs } = request;
    const claiming = this.store.claim({ scope, key, fingerprint, leaseMs, ttlMs, deadline: Date.now() + ms });
    return settleWithin(
      claiming,
      ms,
      () =>
        `The idempotency store did not answer a claim within ${ms} ms (the route's waitTimeout, at least 1 s). On ` +
        "PostgreSQL every pooled connection may be taken: raise the pool's size, or set its connectionTimeoutMillis.",
      {
        result: (outcome) => {
          if (outcome.status === 'claimed') this.giveBackLate(outcome.ref, outcome.takenOver, report);
        },
        error: (error) => {
          // The request was answered 503 and nothing was claimed; a misconfiguration must still be seen.
          if (error instanceof IdempotencyConfigurationError) this.logger.error(`${report.describe()}: ${error.message}`, error.stack);
          else this.logger.debug(`${report.describe()}: a claim that came after its waitTimeout failed: ${(error as Error).message}`);
        },
      },
    );
  }

  /** A claim that landed after its request was answered 503: nobody runs its handler, so the key is freed at once. */
  private giveBackLate(ref: ClaimRef, takenOver: boolean, report: OutcomeReport): void {
    if (takenOver) {
      this.logger.warn(
        `${report.describe()}: a claim that came after its waitTimeout took over an expired lease; it is given back, ` +
          'and the attempt that held the lease can no longer store its answer.',
      );
    }
    Promise.resolve()
      .then(() => this.store.release(ref))
      .then(
        () => this.waiter.wake(recordId(ref)),
        (error: Error) =>
          this.logger.warn(`${report.describe()}: giving back a claim that came after its waitTimeout failed (its lease frees it): ${error.message}`),
      );
  }

  private held(ref: ClaimRef, attempt: number, takenOver: boolean, request: BeginRequest, report: OutcomeReport): UnreportedClaim {
    const stopRenewing = this.renewWhileHeld(ref, request.leaseMs, request.maxLeaseMs, report);
    // False when the lease was taken over meanwhile: the write is fenced off, and reported as such. The answer
    // waits for the write no longer than waitTimeout; one that lands later is as good, one that never does is freed
    // by the lease.
    const finish = async (write: () => Promise<boolean>): Promise<boolean> => {
      stopRenewing();
      try {
        const ms = Math.max(request.waitTimeoutMs, SHORTEST_STORE_WAIT_MS);
        return await settleWithin(write(), ms, () => `The idempotency store did not answer within ${ms} ms (waitTimeout, at least 1 s).`);
      } finally {
        this.waiter.wake(recordId(ref));
      }
    };
    return {
      mode: 'lease',
      attempt,
      takenOver,
      complete: (response, ttlMs) => finish(() => this.store.complete(ref, response, ttlMs)),
      release: () => finish(() => this.store.release(ref)),
      abandon: stopRenewing,
    };
  }

  /** Renews the lease every third of it while the handler runs; the timer is armed only where maxLease outlasts the lease. */
  private renewWhileHeld(ref: ClaimRef, leaseMs: number, maxLeaseMs: number, report: OutcomeReport): () => void {
    if (maxLeaseMs <= leaseMs) return () => undefined;
    const claimedAt = Date.now();
    const timer = setInterval(
      () => {
        const left = claimedAt + maxLeaseMs - Date.now();
        if (left <= 0) {
          clearInterval(timer);
          return;
        }
        this.store.renew(ref, Math.min(leaseMs, left)).then(
          (held) => {
            if (held) return;
            clearInterval(timer);
            this.logger.warn(`${report.describe()}: lease lost while its handler was running.`);
          },
          (error: Error) => this.logger.error(`${report.describe()}: lease renewal failed: ${error.message}`, error.stack),
        );
      },
      Math.max(SHORTEST_RENEWAL_MS, Math.floor(leaseMs / 3)),
    );
    timer.unref();
    return () => clearInterval(timer);
  }
}
