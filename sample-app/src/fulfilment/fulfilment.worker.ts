import { type BeforeApplicationShutdown, Injectable, Logger, type OnApplicationBootstrap } from '@nestjs/common';
import { Worker } from 'bullmq';
import IORedis from 'ioredis';
import { IdempotencyService } from 'nestjs-idempotency';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EntityManager } from 'typeorm';
import { Product } from '../shop/product.entity';
import { FULFILMENT_QUEUE, type FulfilOrder, QUEUE_PREFIX, redisUrl } from './fulfilment';
import { Receipt } from './receipt.entity';

/** How long a graceful close may wait for the running jobs before the worker lets go of Redis anyway. */
const CLOSE_WAIT_MS = 10_000;

/**
 * Fulfils checkouts from the queue: takes the stock and writes the receipt, once per job however often
 * BullMQ delivers it (`runJob` commits both with the job's record).
 */
@Injectable()
export class FulfilmentWorker implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Fulfilment');
  private worker?: Worker<FulfilOrder>;
  /** The worker's own connection, whose `ready` tells each time Redis answers again (the worker says so only once). */
  private redis?: IORedis;
  /** Redis stopped answering and the warning went out: quiet until it answers again. */
  private outage = false;

  constructor(private readonly idempotency: IdempotencyService) {}

  onApplicationBootstrap(): void {
    const { url, shown } = redisUrl();
    this.redis = new IORedis(url.href, { maxRetriesPerRequest: null });
    this.redis.on('ready', () => {
      if (this.outage) this.logger.log(`Redis at ${shown} answers again: the fulfilment jobs that waited in the outbox are sent now.`);
      this.outage = false;
    });
    this.worker = new Worker<FulfilOrder>(FULFILMENT_QUEUE, (job) => this.idempotency.runJob(job, (em: EntityManager) => this.fulfil(em, job.data)), {
      connection: this.redis,
      prefix: QUEUE_PREFIX,
    });
    // Each connection of the worker reports each failed reconnect here: one warning per outage, then quiet.
    this.worker.on('error', (error) => {
      if (this.outage) return;
      this.outage = true;
      this.logger.warn(
        `Redis at ${shown} does not answer (${error.message}): orders and webhooks are still taken, and fulfilment jobs ` +
          'wait in the outbox table until Redis answers.',
      );
    });
  }

  /**
   * A graceful close waits for Redis, forever while it is down: the worker is then closed by force (a job it was
   * running is delivered again later, which runJob makes harmless). A graceful close is bounded too, should Redis
   * go away during it. Before the shutdown phase, in which TypeORM closes the DataSource a running job writes to.
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (!this.worker) return;
    const closing = this.worker.close(this.redis?.status !== 'ready');
    const bound = new AbortController();
    const closed = await Promise.race([closing.then(() => true), sleep(CLOSE_WAIT_MS, false, { signal: bound.signal }).catch(() => true)]);
    bound.abort();
    if (!closed) this.logger.warn(`The fulfilment worker did not close within ${CLOSE_WAIT_MS / 1000} s; its Redis connection is cut.`);
    this.redis?.disconnect();
  }

  private async fulfil(em: EntityManager, order: FulfilOrder): Promise<{ receipt: number; status: string }> {
    const taken = await em
      .createQueryBuilder()
      .update(Product)
      .set({ stock: () => 'stock - :quantity' })
      .where('sku = :sku AND stock >= :quantity', { sku: order.sku, quantity: order.quantity })
      .execute();
    const status = taken.affected === 1 ? 'shipped' : 'backordered';
    const receipt = await em.save(em.create(Receipt, { sessionId: order.sessionId, sku: order.sku, quantity: order.quantity, status }));
    return { receipt: receipt.id, status };
  }
}
