import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { Worker } from 'bullmq';
import { IdempotencyService } from 'nestjs-idempotency';
import type { EntityManager } from 'typeorm';
import { Product } from '../shop/product.entity';
import { FULFILMENT_QUEUE, type FulfilOrder, QUEUE_PREFIX, REDIS_URL } from './fulfilment';
import { Receipt } from './receipt.entity';

/**
 * Fulfils checkouts from the queue: takes the stock and writes the receipt, once per job however often
 * BullMQ delivers it (`runJob` commits both with the job's record).
 */
@Injectable()
export class FulfilmentWorker implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('Fulfilment');
  private worker?: Worker<FulfilOrder>;

  constructor(private readonly idempotency: IdempotencyService) {}

  onApplicationBootstrap(): void {
    let reportedDown = false;
    this.worker = new Worker<FulfilOrder>(FULFILMENT_QUEUE, (job) => this.idempotency.runJob(job, (em: EntityManager) => this.fulfil(em, job.data)), {
      connection: { url: REDIS_URL, maxRetriesPerRequest: null },
      prefix: QUEUE_PREFIX,
    });
    this.worker.on('error', (error) => {
      // Once per outage: the worker reconnects by itself, and the outbox keeps the jobs meanwhile.
      if (!reportedDown) this.logger.warn(`Redis at ${REDIS_URL} is unreachable (${error.message}); jobs wait in the outbox.`);
      reportedDown = true;
    });
    this.worker.on('ready', () => (reportedDown = false));
  }

  async onApplicationShutdown(): Promise<void> {
    await this.worker?.close();
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
