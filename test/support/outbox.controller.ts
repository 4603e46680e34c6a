import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Worker } from 'bullmq';
import { DataSource, type EntityManager } from 'typeorm';
import { Idempotent, IdempotencyService, IdempotentTransaction, JobOutbox } from 'nestjs-idempotency';
import { type RedisConnectionOptions } from '../../libs/idempotency/src/outbox/outbox.options';
import { Effect } from './effects.controller';

export const FULFILMENT_QUEUE = 'fulfilment';

/** An order event: recorded, and its fulfilment handed to the queue, in one transaction. */
@Controller('outbox')
export class OutboxController {
  constructor(
    private readonly outbox: JobOutbox,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  @Post('events')
  @HttpCode(200)
  @Idempotent({ transaction: true, waitTimeout: '20s' })
  async event(@Body() body: { label: string; removeOnComplete?: boolean; badOption?: boolean }, @IdempotentTransaction() em: EntityManager) {
    await em.insert(Effect, { label: `order:${body.label}` });
    // A priority BullMQ refuses (not a whole number): the job can never be added.
    const options = { ...(body.removeOnComplete ? { removeOnComplete: true } : {}), ...(body.badOption ? { priority: 1.5 } : {}) };
    const jobId = await this.outbox.enqueue(em, { queue: FULFILMENT_QUEUE, name: 'fulfil', data: { label: body.label }, options });
    return { jobId };
  }

  /** Misuse: enqueueing outside a transaction is refused, loudly. */
  @Post('outside')
  @HttpCode(200)
  async outside(@Body() body: { label: string }) {
    return this.outbox.enqueue(this.dataSource.manager, { queue: FULFILMENT_QUEUE, name: 'fulfil', data: body });
  }
}

/**
 * A BullMQ worker whose effect (an effects row) commits with the job's record through `runJob`.
 * `lockDuration` is short so that a job whose worker died is found stalled within a couple of seconds.
 */
export function fulfilmentWorker(idempotency: IdempotencyService, connection: RedisConnectionOptions | string, prefix: string): Worker {
  const worker = new Worker(
    FULFILMENT_QUEUE,
    (job) =>
      idempotency.runJob(job, async (em: EntityManager) => {
        await em.insert(Effect, { label: `fulfil:${(job.data as { label: string }).label}` });
        return { fulfilled: (job.data as { label: string }).label };
      }),
    {
      connection: typeof connection === 'string' ? { url: connection, maxRetriesPerRequest: null } : { ...connection, maxRetriesPerRequest: null },
      prefix,
      lockDuration: 1000,
      stalledInterval: 1000,
      concurrency: 10,
    },
  );
  // Connection errors while a test's own Redis is down: the worker reconnects by itself.
  worker.on('error', () => undefined);
  return worker;
}
