import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { DataSourceLike, EntityManagerLike, QueryRunnerLike } from '../storage/typeorm-like';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IDEMPOTENCY_OUTBOX_TABLE, qualifiedTableName } from '../storage/table-name';

/** A job to enqueue: what BullMQ's `queue.add(name, data, options)` takes, and the queue's name. */
export interface OutboxJob<TData = unknown> {
  queue: string;
  name: string;
  /** Stored as JSON, as BullMQ stores it. */
  data: TData;
  /**
   * The BullMQ job id. Default: one derived from the outbox row. Give your own to make two enqueues of
   * the same work one job (the second is dropped), e.g. `fulfil-${orderId}`.
   */
  jobId?: string;
  /** BullMQ job options: `attempts`, `backoff`, `delay`, `priority`, `removeOnComplete`... */
  options?: Record<string, unknown>;
}

/** Where `JobOutbox` looks up the DataSource; the module provides it. */
export const OUTBOX_DATA_SOURCE = Symbol('nestjs-idempotency:outbox-data-source');

/**
 * Enqueues BullMQ jobs transactionally: `enqueue()` writes a row of the outbox in the caller's
 * transaction, so the job exists if and only if the business writes (and, in an idempotent route, the
 * stored response) commit. The relay sends it to BullMQ after the commit.
 *
 * @example
 * \@Post('webhooks/stripe') \@Idempotent({ key: 'stripe', transaction: true })
 * async handle(@Body() event: Stripe.Event, @IdempotentTransaction() em: EntityManager) {
 *   await em.insert(Order, ...);
 *   await this.outbox.enqueue(em, { queue: 'fulfilment', name: 'fulfil-order', data: { orderId } });
 * }
 */
@Injectable()
export class JobOutbox implements OnModuleDestroy {
  private readonly table: string;
  private readonly enqueued = new WeakSet<QueryRunnerLike>();
  private wake: () => void = () => undefined;
  /**
   * Told when a transaction that enqueued ends, so that this process's relay sends at once. TypeORM also
   * reports the release of a savepoint as a commit: only the outermost one (no transaction left) counts.
   */
  private readonly subscriber = {
    afterTransactionCommit: ({ queryRunner }: { queryRunner: QueryRunnerLike }) => {
      if (queryRunner.isTransactionActive || !this.enqueued.has(queryRunner)) return;
      this.enqueued.delete(queryRunner);
      this.wake();
    },
    afterTransactionRollback: ({ queryRunner }: { queryRunner: QueryRunnerLike }) => {
      if (!queryRunner.isTransactionActive) this.enqueued.delete(queryRunner);
    },
  };

  /** `null` in an app without TypeORM (records in Redis): the outbox then has nothing to write to. */
  constructor(@Inject(OUTBOX_DATA_SOURCE) private readonly dataSource: DataSourceLike | null) {
    this.table = qualifiedTableName(dataSource, IDEMPOTENCY_OUTBOX_TABLE);
    dataSource?.subscribers.push(this.subscriber);
  }

  onModuleDestroy(): void {
    const index = this.dataSource?.subscribers.indexOf(this.subscriber) ?? -1;
    if (index >= 0) this.dataSource?.subscribers.splice(index, 1);
  }

  /** Returns the BullMQ job id. */
  async enqueue<TData>(manager: EntityManagerLike, job: OutboxJob<TData>): Promise<string> {
    const runner = manager.queryRunner;
    if (!runner?.isTransactionActive) {
      throw new IdempotencyConfigurationError(
        'JobOutbox.enqueue() needs a transaction manager (@IdempotentTransaction() in a transaction: true route, or ' +
          'dataSource.transaction()): outside one, the job would not commit with the writes that call for it.',
      );
    }
    assertJob(job);
    const [row] = await manager.query<Array<{ job_id: string }>>(
      `INSERT INTO ${this.table} (queue, name, data, options, job_id)
       VALUES ($1, $2, $3::jsonb, $4::jsonb, COALESCE($5, 'outbox-' || gen_random_uuid()))
       ON CONFLICT (job_id) DO NOTHING
       RETURNING job_id`,
      [job.queue, job.name, JSON.stringify(job.data ?? null), JSON.stringify(job.options ?? {}), job.jobId ?? null],
    );
    this.enqueued.add(runner);
    return row?.job_id ?? (job.jobId as string);
  }

  /** Marks the outbox row of a job processed, in the consumer's transaction (see `IdempotencyService.runJob`). */
  async markProcessed(manager: EntityManagerLike, jobId: string): Promise<void> {
    await manager.query(`UPDATE ${this.table} SET processed_at = clock_timestamp() WHERE job_id = $1 AND processed_at IS NULL`, [jobId]);
  }

  /** Throws, with the fix, when the outbox table is missing. */
  async assertTable(): Promise<void> {
    if (!this.dataSource) {
      throw new IdempotencyConfigurationError('The outbox needs a TypeORM DataSource on PostgreSQL: import TypeOrmModule.forRoot() beside IdempotencyModule.');
    }
    try {
      await this.dataSource.query(`SELECT 1 FROM ${this.table} LIMIT 0`);
    } catch (error) {
      const code = (error as { code?: string; driverError?: { code?: string } }).driverError?.code ?? (error as { code?: string }).code;
      if (code !== '42P01') throw error;
      throw new IdempotencyConfigurationError(
        `The outbox table ${IDEMPOTENCY_OUTBOX_TABLE} is missing. Add ...idempotencyMigrations to the DataSource migrations and ` +
          'run them, or ...idempotencyEntities with synchronize: true.',
        { cause: error },
      );
    }
  }

  /** The relay of this process, woken when a transaction that enqueued commits. */
  onCommit(wake: () => void): void {
    this.wake = wake;
  }
}

function assertJob(job: OutboxJob): void {
  if (typeof job.queue !== 'string' || job.queue === '' || job.queue.includes(':') || typeof job.name !== 'string' || job.name === '') {
    throw new IdempotencyConfigurationError('JobOutbox.enqueue() needs a queue name (without ":") and a job name.');
  }
  // BullMQ's own rules for custom ids: checked here, since a job BullMQ refuses would only fail at the relay.
  if (job.jobId !== undefined && (job.jobId === '' || `${Number.parseInt(job.jobId, 10)}` === job.jobId || job.jobId.includes(':'))) {
    throw new IdempotencyConfigurationError(`JobOutbox.enqueue(): jobId ${JSON.stringify(job.jobId)} must not be empty, a whole number, or contain ':'.`);
  }
  if (job.options && 'jobId' in job.options) throw new IdempotencyConfigurationError('JobOutbox.enqueue(): give jobId beside options, not in them.');
}
