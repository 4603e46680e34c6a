import { Inject, Injectable, Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EntityManager } from 'typeorm';
import { toMilliseconds } from './duration';
import { IdempotencyConfigurationError } from './errors/configuration.errors';
import { IDEMPOTENCY_MODULE_OPTIONS } from './idempotency.module-definition';
import type { IdempotencyModuleOptions, InFlightPolicy } from './idempotency.options';
import { KeyedGate } from './keyed-gate';
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
  release(): Promise<void>;
  /** Lease mode: stops renewing, so that the claim is taken over once its lease runs out. */
  abandon(): void;
  /** Transaction mode: see `TransactionalClaim.advanceVersion`. */
  advanceVersion?(resource: string, version: string, ttlMs: number): Promise<VersionOutcome>;
}

export type BeginOutcome = Exclude<ClaimOutcome, { status: 'claimed' }> | { status: 'claimed'; claim: HeldClaim };

/** First and longest pause between two looks at an in-flight record, in ms. */
const FIRST_POLL_MS = 20;
const LONGEST_POLL_MS = 500;

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

  async begin(request: BeginRequest): Promise<BeginOutcome> {
    const id = recordId(request);
    const cached = this.replays?.get(id, request.fingerprint);
    if (cached) return cached;
    const deadline = Date.now() + request.waitTimeoutMs;
    const waits = request.transaction || request.onInFlight === 'wait';
    for (let pause = FIRST_POLL_MS; ; pause = Math.min(pause * 2, LONGEST_POLL_MS)) {
      const askedAt = Date.now();
      const outcome = request.transaction ? await this.claimInTransaction(request, id, deadline) : await this.claim(request);
      if (outcome.status === 'completed') this.replays?.remember(id, outcome, askedAt);
      const remaining = deadline - Date.now();
      if (outcome.status !== 'in-flight' || !waits || remaining <= 0) return outcome;
      await this.pause(id, Math.min(pause, remaining, Math.max(outcome.retryAfterMs, FIRST_POLL_MS)));
    }
  }

  private async claim(request: BeginRequest): Promise<BeginOutcome> {
    const outcome = await this.store.claim(request);
    if (outcome.status !== 'claimed') return outcome;
    if (outcome.takenOver) {
      this.logger.warn(`Lease expired; attempt ${outcome.attempt} takes over the claim of scope "${request.scope}".`);
    }
    return { status: 'claimed', claim: this.leaseClaim(outcome.ref, outcome.attempt, outcome.takenOver, request) };
  }

  private async claimInTransaction(request: BeginRequest, id: string, deadline: number): Promise<BeginOutcome> {
    const store = this.transactionalStore();
    const turn = await this.gate.acquire(id, deadline - Date.now());
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
      return { status: 'claimed', claim: this.transactionClaim(outcome.claim, { attempt: outcome.attempt, takenOver: outcome.takenOver }, id, request.maxLeaseMs, leave) };
    } catch (error) {
      leave();
      throw error;
    }
  }

  private leaseClaim(ref: ClaimRef, attempt: number, takenOver: boolean, request: BeginRequest): HeldClaim {
    const stopRenewing = this.renewWhileHeld(ref, request.leaseMs, request.maxLeaseMs);
    const finish = async (write: () => Promise<boolean>, lost: string): Promise<boolean> => {
      stopRenewing();
      try {
        const held = await write();
        if (!held) this.logger.warn(`${lost} for scope "${ref.scope}": its lease ran out and another attempt took the key over.`);
        return held;
      } finally {
        this.wake(recordId(ref));
      }
    };
    return {
      attempt,
      takenOver,
      complete: (response, ttlMs) => finish(() => this.store.complete(ref, response, ttlMs), 'Late completion fenced'),
      release: async () => {
        await finish(() => this.store.release(ref), 'Release fenced');
      },
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
  ): HeldClaim {
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
      this.logger.warn(`A transactional claim was held past maxLease (${maxLeaseMs} ms); it is rolled back.`);
      end(() => claim.rollback()).catch((error: Error) => this.logger.error(`Rolling back an expired claim failed: ${error.message}`, error.stack));
    }, maxLeaseMs);
    timer.unref();
    const release = async () => {
      if (open) await end(() => claim.rollback());
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
  private renewWhileHeld(ref: ClaimRef, leaseMs: number, maxLeaseMs: number): () => void {
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
          this.logger.warn(`Lease lost for scope "${ref.scope}" while its handler was running.`);
        },
        (error: Error) => this.logger.error(`Lease renewal failed for scope "${ref.scope}": ${error.message}`, error.stack),
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

function recordId(ref: { scope: string; key: string }): string {
  return `${ref.scope}\u0000${ref.key}`;
}
