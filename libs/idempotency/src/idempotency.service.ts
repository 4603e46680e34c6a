import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy, type OnModuleInit } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EntityManagerLike } from './storage/typeorm-like';
import { ClaimCoordinator } from './claim/claim-coordinator';
import { runWithClaim } from './claim/claim-context';
import { IdempotencyConfigurationError } from './errors/configuration.errors';
import { IdempotencyKeyInUseException, IdempotencyKeyReusedException } from './errors/idempotency.errors';
import { IDEMPOTENCY_MODULE_OPTIONS } from './idempotency.module-definition';
import type { IdempotencyModuleOptions } from './idempotency.options';
import type { IdempotencyRecordView } from './storage/idempotency-store';
import { JobOutbox } from './outbox/job-outbox';
import { RoutePlans } from './plan/route-plans';
import { resolveRunPlan, type RunOptions } from './plan/run-plan';

/** The scope of `run()` and `find()` when none is given. */
export const DEFAULT_RUN_SCOPE = 'run';

export type { RunOptions } from './plan/run-plan';

/**
 * Idempotency outside HTTP: queue consumers, cron jobs, batch items.
 *
 * @example
 * await idempotency.run(`fulfil:${job.id}`, () => fulfil(job.data), { scope: 'fulfilment' });
 * await idempotency.run(event.id, (em: EntityManager) => em.insert(Receipt, { eventId: event.id }), { transaction: true });
 */
@Injectable()
export class IdempotencyService implements OnModuleInit, OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('Idempotency');
  private purgeTimer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly coordinator: ClaimCoordinator,
    @Inject(IDEMPOTENCY_MODULE_OPTIONS) private readonly options: IdempotencyModuleOptions,
    private readonly outbox: JobOutbox,
    private readonly plans: RoutePlans,
  ) {}

  /**
   * Runs `fn` once per (scope, key) and returns its result to every caller, the first and every repeat
   * (results round-trip through JSON). If `fn` throws, the key is released and the error rethrown, so
   * the next call runs it again.
   *
   * With `transaction: true`, `fn` gets the EntityManager of the claim's transaction: declare its type,
   * `(em: EntityManager) => ...`, to use TypeORM's API on it (the library names no type of TypeORM).
   */
  run<T>(key: string, fn: () => T | Promise<T>, options?: RunOptions & { transaction?: false }): Promise<T>;
  run<T, M extends EntityManagerLike = EntityManagerLike>(
    key: string,
    fn: (manager: M) => T | Promise<T>,
    options: RunOptions & { transaction: true },
  ): Promise<T>;
  async run<T>(key: string, fn: (manager: EntityManagerLike) => T | Promise<T>, options: RunOptions = {}): Promise<T> {
    const plan = resolveRunPlan(this.plans.defaults, options);
    const scope = options.scope ?? DEFAULT_RUN_SCOPE;
    const outcome = await this.coordinator.begin({ ...plan, scope, key, fingerprint: options.fingerprint ?? null });
    switch (outcome.status) {
      case 'completed':
        return decode<T>(outcome.response.body);
      case 'fingerprint-mismatch':
        throw new IdempotencyKeyReusedException();
      case 'in-flight':
        throw new IdempotencyKeyInUseException(Math.max(1, Math.ceil(outcome.retryAfterMs / 1000)));
    }
    const { claim } = outcome;
    let result: T;
    let body: Buffer;
    try {
      const manager = claim.mode === 'transaction' ? claim.manager : (undefined as unknown as EntityManagerLike);
      result = await runWithClaim({ scope, key, attempt: claim.attempt }, () => fn(manager));
      body = encode(result);
    } catch (error) {
      await claim.release().catch((releaseError: Error) =>
        // The lease (or the closed transaction) frees the key anyway; the caller needs fn's error.
        this.logger.error(`Releasing the key after a failed run() failed: ${releaseError.message}`, releaseError.stack),
      );
      throw error;
    }
    await claim.complete({ status: 200, headers: [], body }, plan.ttlMs);
    return result;
  }

  /**
   * Runs a BullMQ job's effect once per job, however many times BullMQ delivers it (a stalled job runs
   * again; a job re-sent by the outbox relay is a new delivery of the same job id). `fn`'s writes commit
   * in one transaction with the record of the job (scope `job:<queue>`, key the job id) and, for a job
   * from the outbox, with the mark that it was processed: a redelivery finds the record, does nothing and
   * returns the first result.
   *
   * @example
   * new Worker('fulfilment', (job) => idempotency.runJob(job, (em: EntityManager) => fulfil(em, job.data)), { connection });
   */
  async runJob<T, M extends EntityManagerLike = EntityManagerLike>(
    job: { id?: string; queueName: string; timestamp?: number },
    fn: (manager: M) => T | Promise<T>,
    options: Omit<RunOptions, 'transaction' | 'scope'> = {},
  ): Promise<T> {
    const jobId = job.id;
    if (!jobId) throw new IdempotencyConfigurationError('runJob() needs a job with an id, as BullMQ gives every job it delivers.');
    // BullMQ's own ids are a counter that starts again at 1 when Redis loses its data: with the job's
    // creation time they stay unique. Custom ids (the outbox's) are the identity of the work itself.
    const key = /^\d+$/.test(jobId) ? `${jobId}@${job.timestamp ?? 0}` : jobId;
    return this.run(
      key,
      async (manager) => {
        // The claim's manager is TypeORM's own EntityManager, which the caller names as M.
        const result = await fn(manager as M);
        if (this.options.outbox) await this.outbox.markProcessed(manager, jobId);
        return result;
      },
      { ...options, scope: `job:${job.queueName}`, transaction: true },
    );
  }

  /** The live record of a key (`run()`'s default scope unless one is given), or `undefined`. */
  find(key: string, options: { scope?: string } = {}): Promise<IdempotencyRecordView | undefined> {
    return this.coordinator.store.find(options.scope ?? DEFAULT_RUN_SCOPE, key);
  }

  /**
   * Deletes every expired record, in batches of `purgeBatchSize` (each one short statement); returns how many.
   * After each batch it pauses as long as the batch took: the purge keeps at most half of one connection
   * busy, and slows down by itself when the database is (a slower batch buys a longer pause). With claims
   * running meanwhile, the pause cost the purge more than half its rate and spared the claims most of their
   * added latency (docs/purge-and-partitioning.md).
   */
  async purgeExpired(): Promise<number> {
    const batchSize = this.plans.defaults.purgeBatchSize;
    let total = 0;
    for (;;) {
      const startedAt = performance.now();
      const deleted = await this.coordinator.store.purgeExpired(batchSize);
      total += deleted;
      // A purge stops with the app between two batches; the next instance's purge goes on.
      if (deleted < batchSize || this.stopped) return total;
      await sleep(performance.now() - startedAt);
    }
  }

  /**
   * Purges every `purgeInterval`, the first time at a random point within the first interval (at most a
   * minute after the start): instances replaced more often than the interval still purge, and instances
   * started together do not all purge at once. A run starts only once the previous one has ended.
   */
  onModuleInit(): void {
    const intervalMs = this.plans.defaults.purgeIntervalMs;
    if (intervalMs === 0) return;
    const schedule = (delayMs: number) => {
      this.purgeTimer = setTimeout(() => {
        this.purgeExpired()
          .then(
            (deleted) => deleted > 0 && this.logger.log(`Purged ${deleted} expired idempotency records.`),
            (error: Error) => this.logger.error(`Purging expired idempotency records failed: ${error.message}`, error.stack),
          )
          .finally(() => this.stopped || schedule(intervalMs));
      }, delayMs);
      this.purgeTimer.unref();
    };
    schedule(Math.random() * Math.min(intervalMs, 60_000));
  }

  /** Fails the start, with the fix, when the table is missing; an unreachable store only warns. */
  async onApplicationBootstrap(): Promise<void> {
    try {
      await this.coordinator.store.find('', '');
      if (this.options.outbox) await this.outbox.assertTable();
    } catch (error) {
      if (error instanceof IdempotencyConfigurationError) throw error;
      this.logger.warn(`The idempotency store is not reachable yet: ${(error as Error).message}`);
    }
  }

  onModuleDestroy(): void {
    this.stopped = true;
    clearTimeout(this.purgeTimer);
  }
}

function encode(value: unknown): Buffer {
  return value === undefined ? Buffer.alloc(0) : Buffer.from(JSON.stringify(value), 'utf8');
}

function decode<T>(body: Buffer): T {
  return (body.length === 0 ? undefined : JSON.parse(body.toString('utf8'))) as T;
}
