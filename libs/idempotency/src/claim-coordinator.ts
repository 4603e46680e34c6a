import { Inject, Injectable, Logger } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EntityManager } from 'typeorm';
import { LONGEST_TIMER_MS, toMilliseconds } from './duration';
import { IdempotencyConfigurationError } from './errors/configuration.errors';
import { IDEMPOTENCY_MODULE_OPTIONS } from './idempotency.module-definition';
import type { IdempotencyModuleOptions, InFlightPolicy } from './idempotency.options';
import { KeyedGate } from './keyed-gate';
import { OutcomeReport } from './observability/idempotency-events';
import { ReplayCache } from './replay-cache';
import {
  type ClaimOutcome,
  type ClaimRef,
  type ClaimRequest,
  IDEMPOTENCY_STORE,
  type IdempotencyStore,
  type StoredResponse,
  type TransactionalClaim,
  type TransactionalIdempotencyStore,
  type VersionOutcome,
} from './storage/idempotency-store';

/** A claim attempt with the policy around it: waiting, lease renewal and transaction mode. */
export interface BeginRequest extends ClaimRequest {
  maxLeaseMs: number;
  waitTimeoutMs: number;
  onInFlight: InFlightPolicy;
  transaction: boolean;
  /** An HTTP request: its outcomes carry the status the client gets. */
  http?: boolean;
}

/**
 * What the client gets when a held claim is given back without a stored answer; published as the
 * request's outcome (default `released`).
 */
export interface ReleaseAnswer {
  outcome?: 'released' | 'stale-skipped' | 'rejected-in-flight' | 'store-unavailable';
  status?: number;
  /** Why, for the log line of `store-unavailable`. */
  error?: Error;
}

/** A claim this process holds: it must end with `complete()` or `release()`. */
export interface HeldClaim {
  readonly attempt: number;
  readonly takenOver: boolean;
  /** Transaction mode: the claim's transaction. */
  readonly manager?: EntityManager;
  /** Stores the response; false if the claim was lost (lease taken over). Throws if nothing was stored. */
  complete(response: StoredResponse, ttlMs: number): Promise<boolean>;
  /** Gives the key back (transaction mode: rolls back), so that the next attempt runs again. */
  release(answer?: ReleaseAnswer): Promise<void>;
  /** Lease mode: stops renewing, so that the claim is taken over once its lease runs out. */
  abandon(): void;
  /** Transaction mode: see `TransactionalClaim.advanceVersion`. */
  advanceVersion?(resource: string, version: string, ttlMs: number): Promise<VersionOutcome>;
}

export type BeginOutcome = Exclude<ClaimOutcome, { status: 'claimed' }> | { status: 'claimed'; claim: HeldClaim };

/** A held claim before its outcomes are reported: `release()` says whether the claim was still held. */
type UnreportedClaim = Omit<HeldClaim, 'release'> & { release(): Promise<boolean> };

/** First and longest pause between two looks at an in-flight record, in ms. */
const FIRST_POLL_MS = 20;
const LONGEST_POLL_MS = 500;
/** What a claim outside a transaction gets for the store at least, when less of `waitTimeout` is left (0 answers duplicates at once). */
const SHORTEST_CLAIM_WAIT_MS = 1_000;

/**
 * Runs claims against the store with the policies of SPEC.md: `onInFlight: 'wait'` polls the store
 * (holding no connection between looks) and is woken at once when the first request finishes in this
 * process; lease renewal while a handler runs; transaction mode with duplicates queued in-process.
 *
 * Polling rather than LISTEN/NOTIFY: it needs no dedicated connection outside the app's pool, works
 * through PgBouncer's transaction pooling (with `preparedStatements: false` where it keeps no prepared
 * statements), and the in-process wake-up covers the common case of
 * duplicates arriving at the same instance.
 */
@Injectable()
export class ClaimCoordinator {
  private readonly logger = new Logger('Idempotency');
  private readonly gate = new KeyedGate();
  private readonly wakers = new Map<string, Set<() => void>>();
  private readonly replays?: ReplayCache;

  constructor(
    @Inject(IDEMPOTENCY_STORE) readonly store: IdempotencyStore,
    @Inject(IDEMPOTENCY_MODULE_OPTIONS) options: IdempotencyModuleOptions = {},
  ) {
    if (options.replayCache !== false) {
      const maxBytes = options.replayCache?.maxBytes;
      if (maxBytes !== undefined && !(Number.isInteger(maxBytes) && maxBytes > 0)) {
        throw new IdempotencyConfigurationError(`replayCache.maxBytes must be a positive whole number of bytes, not ${String(maxBytes)}.`);
      }
      this.replays = new ReplayCache({
        maxAgeMs: toMilliseconds(options.replayCache?.maxAge ?? '1m', 'replayCache.maxAge'),
        maxBytes: options.replayCache?.maxBytes ?? 8 * 1024 * 1024,
      });
    }
  }

  /**
   * Claims the request's key, or says why not. Every outcome is reported here (published and logged),
   * and those of a held claim when it ends.
   */
  async begin(request: BeginRequest): Promise<BeginOutcome> {
    const report = new OutcomeReport(request.scope, request.key, request.http === true, this);
    let outcome: BeginOutcome;
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
        break;
      case 'fingerprint-mismatch':
        report.answer('key-reused', { status: 422 });
        break;
      case 'in-flight':
        report.answer('rejected-in-flight', { status: 409 });
        break;
      case 'claimed':
        report.attempt = outcome.claim.attempt;
        if (outcome.claim.takenOver) report.note('lease-taken-over');
    }
    return outcome;
  }

  private async decide(request: BeginRequest, report: OutcomeReport): Promise<BeginOutcome> {
    const id = recordId(request);
    const cached = this.replays?.get(id, request.fingerprint);
    if (cached) return cached;
    const deadline = Date.now() + request.waitTimeoutMs;
    const waits = request.transaction || request.onInFlight === 'wait';
    for (let pause = FIRST_POLL_MS; ; pause = Math.min(pause * 2, LONGEST_POLL_MS)) {
      const askedAt = Date.now();
      const outcome = request.transaction ? await this.claimInTransaction(request, id, deadline, report) : await this.claim(request, id, deadline, report);
      if (outcome.status === 'completed') this.replays?.remember(id, outcome, askedAt);
      const remaining = deadline - Date.now();
      if (outcome.status !== 'in-flight' || !waits || remaining <= 0) return outcome;
      const pausedAt = performance.now();
      await this.pause(id, Math.min(pause, remaining, Math.max(outcome.retryAfterMs, FIRST_POLL_MS)));
      report.waited(performance.now() - pausedAt);
    }
  }

  private async claim(request: BeginRequest, id: string, deadline: number, report: OutcomeReport): Promise<BeginOutcome> {
    const outcome = await this.claimWithin(request, id, deadline, report);
    if (outcome.status !== 'claimed') return outcome;
    return { status: 'claimed', claim: reported(this.leaseClaim(outcome.ref, outcome.attempt, outcome.takenOver, request, report), report) };
  }

  /**
   * The store's claim, waited for until the request's `waitTimeout` runs out (a poll near its end still gets a
   * second): a claim queued for a pooled connection that the handlers hold (a pool without
   * connectionTimeoutMillis waits without end), or sent to a store that stopped answering, fails as the store
   * being unavailable (503 and a retry) rather than hold the request. The store is told the deadline, so that a
   * claim still queued then never starts; one that lands after it all the same is given back. (Transaction mode
   * bounds its own waits, for the connection and the lock.)
   */
  private claimWithin(request: BeginRequest, id: string, deadline: number, report: OutcomeReport): Promise<ClaimOutcome> {
    const ms = Math.min(Math.max(deadline - Date.now(), SHORTEST_CLAIM_WAIT_MS), LONGEST_TIMER_MS);
    const { scope, key, fingerprint, leaseMs, ttlMs } = request;
    const claiming = this.store.claim({ scope, key, fingerprint, leaseMs, ttlMs, deadline: Date.now() + ms });
    return new Promise((resolve, reject) => {
      let late = false;
      const timer = setTimeout(() => {
        late = true;
        reject(
          new Error(
            `The idempotency store did not answer a claim within ${ms} ms (the route's waitTimeout, at least 1 s). On ` +
              "PostgreSQL every pooled connection may be taken: raise the pool's size, or set its connectionTimeoutMillis.",
          ),
        );
      }, ms);
      timer.unref();
      claiming.then(
        (outcome) => {
          if (!late) {
            clearTimeout(timer);
            resolve(outcome);
          } else if (outcome.status === 'claimed') {
            this.giveBackLate(outcome.ref, outcome.takenOver, id, report);
          }
        },
        (error: unknown) => {
          if (!late) {
            clearTimeout(timer);
            reject(error);
            return;
          }
          // The request was already answered 503 for this claim, and nothing was claimed; a misconfiguration
          // (a missing table, a pooler without prepared statements) must still be seen.
          if (error instanceof IdempotencyConfigurationError) this.logger.error(`${report.describe()}: ${error.message}`, error.stack);
          else this.logger.debug(`${report.describe()}: a claim that came after its waitTimeout failed: ${(error as Error).message}`);
        },
      );
    });
  }

  /** A claim that landed after its request was answered 503: nobody runs its handler, so the key is freed at once. */
  private giveBackLate(ref: ClaimRef, takenOver: boolean, id: string, report: OutcomeReport): void {
    if (takenOver) {
      this.logger.warn(
        `${report.describe()}: a claim that came after its waitTimeout took over an expired lease; it is given back, ` +
          'and the attempt that held the lease can no longer store its answer.',
      );
    }
    Promise.resolve()
      .then(() => this.store.release(ref))
      .then(
        () => this.wake(id),
        (error: Error) => this.logger.warn(`${report.describe()}: giving back a claim that came after its waitTimeout failed (its lease frees it): ${error.message}`),
      );
  }

  private async claimInTransaction(request: BeginRequest, id: string, deadline: number, report: OutcomeReport): Promise<BeginOutcome> {
    const store = this.transactionalStore();
    const queuedAt = performance.now();
    const turn = await this.gate.acquire(id, deadline - Date.now());
    if (!turn || turn.waited) report.waited(performance.now() - queuedAt);
    if (!turn) return { status: 'in-flight', retryAfterMs: 1000 };
    const { leave } = turn;
    try {
      // Queued behind a duplicate that has most likely just completed: its answer is one read away,
      // without a transaction (a burst on one key then costs one cheap read per duplicate).
      const answered = turn.waited ? await store.peek(request) : undefined;
      if (answered) {
        leave();
        return answered;
      }
      const outcome = await store.claimInTransaction(request, deadline - Date.now(), request.maxLeaseMs, request.waitTimeoutMs);
      if (outcome.status !== 'claimed') {
        leave();
        return outcome;
      }
      const held = this.transactionClaim(outcome.claim, { attempt: outcome.attempt, takenOver: outcome.takenOver }, id, request.maxLeaseMs, leave, report);
      return { status: 'claimed', claim: reported(held, report) };
    } catch (error) {
      leave();
      throw error;
    }
  }

  private leaseClaim(ref: ClaimRef, attempt: number, takenOver: boolean, request: BeginRequest, report: OutcomeReport): UnreportedClaim {
    const stopRenewing = this.renewWhileHeld(ref, request.leaseMs, request.maxLeaseMs, report);
    // False when the lease was taken over meanwhile: the write is fenced off, and reported as such.
    const finish = async (write: () => Promise<boolean>): Promise<boolean> => {
      stopRenewing();
      try {
        return await write();
      } finally {
        this.wake(recordId(ref));
      }
    };
    return {
      attempt,
      takenOver,
      complete: (response, ttlMs) => finish(() => this.store.complete(ref, response, ttlMs)),
      release: () => finish(() => this.store.release(ref)),
      abandon: stopRenewing,
    };
  }

  /**
   * A claim held in an open transaction. It ends with the handler; or, for a handler that is still
   * running `maxLeaseMs` after the claim, by rollback, which gives the row, the connection and this
   * process's turn on the key back (the database also ends a session left idle that long).
   */
  private transactionClaim(
    claim: TransactionalClaim,
    outcome: { attempt: number; takenOver: boolean },
    id: string,
    maxLeaseMs: number,
    leave: () => void,
    report: OutcomeReport,
  ): UnreportedClaim {
    let open = true;
    const end = async (work: () => Promise<void>) => {
      if (!open) throw new Error(`The claim's transaction was rolled back ${maxLeaseMs} ms after the claim (maxLease).`);
      open = false;
      clearTimeout(timer);
      try {
        await work();
      } finally {
        leave();
        this.wake(id);
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
      ...outcome,
      manager: claim.manager,
      complete: async (response, ttlMs) => {
        await end(() => claim.complete(response, ttlMs));
        return true;
      },
      release,
      advanceVersion: claim.advanceVersion?.bind(claim),
      abandon: () => {
        release().catch((error: Error) => this.logger.error(`Rolling back an abandoned claim failed: ${error.message}`, error.stack));
      },
    };
  }

  /**
   * Renews the lease every third of it while the handler runs, so that a slow but live handler is not
   * run a second time; never past `maxLeaseMs` after the claim, so that a stuck one is.
   */
  private renewWhileHeld(ref: ClaimRef, leaseMs: number, maxLeaseMs: number, report: OutcomeReport): () => void {
    if (maxLeaseMs <= leaseMs) return () => undefined;
    const claimedAt = Date.now();
    const timer = setInterval(() => {
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
    }, Math.max(250, Math.floor(leaseMs / 3)));
    timer.unref();
    return () => clearInterval(timer);
  }

  private transactionalStore(): TransactionalIdempotencyStore {
    const store = this.store as Partial<TransactionalIdempotencyStore>;
    if (typeof store.claimInTransaction !== 'function') {
      throw new IdempotencyConfigurationError('transaction: true (and runJob()) needs a store that holds claims in transactions: the PostgreSQL store, not Redis.');
    }
    return store as TransactionalIdempotencyStore;
  }

  /** Sleeps up to `ms`, or less if a claim on the same record ends in this process meanwhile. */
  private async pause(id: string, ms: number): Promise<void> {
    const controller = new AbortController();
    const wake = () => controller.abort();
    const wakers = this.wakers.get(id) ?? new Set();
    wakers.add(wake);
    this.wakers.set(id, wakers);
    try {
      await sleep(ms, undefined, { signal: controller.signal }).catch((error: Error) => {
        // Woken early: that is the point of the signal, not a failure.
        if (error.name !== 'AbortError') throw error;
      });
    } finally {
      wakers.delete(wake);
      if (wakers.size === 0 && this.wakers.get(id) === wakers) this.wakers.delete(id);
    }
  }

  private wake(id: string): void {
    for (const wake of this.wakers.get(id) ?? []) wake();
  }
}

/**
 * Reports how a held claim ends: `claimed` once its answer is stored, `completion-fenced` when its lease
 * was taken over meanwhile, `store-unavailable` when storing failed, else what the release says.
 */
function reported(claim: UnreportedClaim, report: OutcomeReport): HeldClaim {
  return {
    ...claim,
    complete: async (response, ttlMs) => {
      let held: boolean;
      try {
        held = await report.timed(() => claim.complete(response, ttlMs));
      } catch (error) {
        // Transaction mode: nothing was committed, the client gets 503. Lease mode: it gets the real answer.
        report.answer('store-unavailable', { status: claim.manager ? 503 : response.status, error: error as Error });
        throw error;
      }
      report.answer(held ? 'claimed' : 'completion-fenced', { status: response.status });
      return held;
    },
    release: async (answer = {}) => {
      let held = true;
      try {
        held = await report.timed(() => claim.release());
      } finally {
        // A release that failed is reported as asked: the client gets that answer, and the lease frees the key.
        report.answer(held ? (answer.outcome ?? 'released') : 'completion-fenced', answer);
      }
    },
    abandon: () => {
      claim.abandon();
      report.answer('released');
    },
    advanceVersion: claim.advanceVersion && ((resource, version, ttlMs) => report.timed(() => claim.advanceVersion!(resource, version, ttlMs))),
  };
}

function recordId(ref: { scope: string; key: string }): string {
  return `${ref.scope}\u0000${ref.key}`;
}
