import { Inject, Injectable } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { OutcomeReport } from '../observability/outcome-report';
import { RoutePlans } from '../plan/route-plans';
import { IDEMPOTENCY_STORE, type IdempotencyStore, isTransactional } from '../storage/idempotency-store';
import { ClaimWaiter } from './claim-waiter';
import { type BeginOutcome, type BeginRequest, type HeldClaim, recordId } from './held-claim';
import { LeaseClaims } from './lease-claims';
import { ReplayCache } from './replay-cache';
import { reported } from './reported-claim';
import { TransactionClaims } from './transaction-claims';

/** First and longest pause between two looks at an in-flight record, in ms. */
const FIRST_POLL_MS = 20;
const LONGEST_POLL_MS = 500;

/**
 * Runs claims against the store with the policies of the route: a replay from this process's cache where it
 * has one; else a claim in lease or transaction mode; `onInFlight: 'wait'` (and transaction mode) looks again
 * until `waitTimeout`, woken at once when the first request ends in this process. Every outcome is reported
 * here, and those of a held claim when it ends.
 */
@Injectable()
export class ClaimCoordinator {
  private readonly waiter = new ClaimWaiter();
  private readonly leases: LeaseClaims;
  private readonly transactions?: TransactionClaims;
  /** Made on the first claim, from the module's options as checked at start; `null` when it is off. */
  private replayCache?: ReplayCache | null;

  constructor(
    @Inject(IDEMPOTENCY_STORE) readonly store: IdempotencyStore,
    private readonly plans: RoutePlans,
  ) {
    this.leases = new LeaseClaims(store, this.waiter);
    if (isTransactional(store)) this.transactions = new TransactionClaims(store, this.waiter);
  }

  private get replays(): ReplayCache | undefined {
    if (this.replayCache === undefined) {
      const options = this.plans.defaults.replayCache;
      this.replayCache = options ? new ReplayCache(options) : null;
    }
    return this.replayCache ?? undefined;
  }

  /** Claims the request's key, or says why not. */
  async begin(request: BeginRequest): Promise<BeginOutcome> {
    const report = new OutcomeReport(request.scope, request.key, request.http === true, this);
    let outcome: Awaited<ReturnType<ClaimCoordinator['decide']>>;
    try {
      outcome = await report.timed(() => this.decide(request, report));
    } catch (error) {
      if (!(error instanceof IdempotencyConfigurationError)) report.answer('store-unavailable', { status: 503, error: error as Error });
      throw error;
    }
    if (report.hasWaited && outcome.status !== 'in-flight') report.note('waited');
    switch (outcome.status) {
      case 'completed':
        report.answer('replayed', { status: outcome.response.status });
        return outcome;
      case 'fingerprint-mismatch':
        report.answer('key-reused', { status: 422 });
        return outcome;
      case 'in-flight':
        report.answer('rejected-in-flight', { status: 409 });
        return outcome;
      case 'claimed': {
        report.attempt = outcome.claim.attempt;
        if (outcome.claim.takenOver) report.note('lease-taken-over');
        const claim: HeldClaim = reported(outcome.claim, report);
        return { status: 'claimed', claim };
      }
    }
  }

  private async decide(request: BeginRequest, report: OutcomeReport) {
    const id = recordId(request);
    const cached = this.replays?.get(id, request.fingerprint);
    if (cached) return cached;
    // The request's own deadline where it has one: its key functions may have used part of the wait already.
    const deadline = request.deadline ?? Date.now() + request.waitTimeoutMs;
    const waits = request.transaction || request.onInFlight === 'wait';
    for (let pause = FIRST_POLL_MS; ; pause = Math.min(pause * 2, LONGEST_POLL_MS)) {
      const askedAt = Date.now();
      const outcome = await this.claim(request, deadline, report);
      if (outcome.status === 'completed') this.replays?.remember(id, outcome, askedAt);
      const remaining = deadline - Date.now();
      if (outcome.status !== 'in-flight' || !waits || remaining <= 0) return outcome;
      const pausedAt = performance.now();
      await this.waiter.pause(id, Math.min(pause, remaining, Math.max(outcome.retryAfterMs, FIRST_POLL_MS)));
      report.waited(performance.now() - pausedAt);
    }
  }

  private claim(request: BeginRequest, deadline: number, report: OutcomeReport): ReturnType<LeaseClaims['claim']> {
    if (!request.transaction) return this.leases.claim(request, deadline, report);
    if (!this.transactions) {
      throw new IdempotencyConfigurationError(
        'transaction: true (and runJob()) needs a store that holds claims in transactions: the PostgreSQL store, not Redis.',
      );
    }
    return this.transactions.claim(request, deadline, report);
  }
}
