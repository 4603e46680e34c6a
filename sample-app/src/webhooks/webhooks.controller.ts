import { Body, Controller, Get, Headers, HttpCode, Post } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Idempotent, IdempotentTransaction, JobOutbox, VerifyWebhook } from 'nestjs-idempotency';
import { FULFILMENT_QUEUE, type FulfilOrder } from '../fulfilment/fulfilment';
import type { DataSource, EntityManager } from 'typeorm';
import { Order } from '../shop/order.entity';
import { Payment } from '../shop/payment.entity';
import { Subscription } from './subscription.entity';
import { WebhookEvent } from './webhook-event.entity';

/** The part of a Stripe event this app reads. */
export interface StripeEvent {
  id: string;
  type: string;
  created: number;
  data: { object: { id: string; object: string; status?: string; amount?: number; metadata?: { orderId?: string; sku?: string; quantity?: string } } };
}

/**
 * Webhook receivers: each delivery is verified before anything else, then applied once (in the same
 * transaction as its stored answer); redeliveries get the first answer.
 */
@Controller('webhooks')
export class WebhooksController {
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly outbox: JobOutbox,
  ) {}

  /**
   * Payments mark their order paid; completed checkouts are handed to the fulfilment queue (through the
   * outbox, in this transaction); subscription events set the subscription's status, newest event
   * first: an older `customer.subscription.updated` arriving late is skipped.
   */
  @Post('stripe')
  @HttpCode(200)
  @VerifyWebhook('stripe')
  @Idempotent({
    key: 'stripe',
    transaction: true,
    order: {
      resource: (req: { body: StripeEvent }) => (req.body.data?.object?.object === 'subscription' ? req.body.data.object.id : undefined),
      version: (req: { body: StripeEvent }) => req.body.created,
    },
  })
  async stripe(@Body() event: StripeEvent, @IdempotentTransaction() em: EntityManager) {
    await em.insert(WebhookEvent, { provider: 'stripe', eventId: event.id, type: event.type });
    const object = event.data.object;
    if (event.type === 'payment_intent.succeeded') {
      // A payment for an order this shop does not know is recorded without one.
      const order = await em.findOneBy(Order, { id: Number(object.metadata?.orderId) || 0 });
      await em.insert(Payment, { eventId: event.id, type: event.type, orderId: order?.id ?? null, amount: object.amount ?? 0 });
      if (order) await em.update(Order, { id: order.id }, { paid: true });
    } else if (event.type === 'checkout.session.completed') {
      const order: FulfilOrder = { sessionId: object.id, sku: object.metadata?.sku ?? 'widget', quantity: Number(object.metadata?.quantity) || 1 };
      await this.outbox.enqueue(em, {
        queue: FULFILMENT_QUEUE,
        name: 'fulfil-order',
        data: order,
        options: { attempts: 5, backoff: { type: 'exponential', delay: 1000 } },
      });
    } else if (object.object === 'subscription' && object.status) {
      await em.upsert(Subscription, { id: object.id, status: object.status, eventCreated: String(event.created) }, ['id']);
    }
    return { received: event.id };
  }

  /** Records each GitHub event (issues, pushes, stars...) once per delivery GUID. */
  @Post('github')
  @HttpCode(200)
  @VerifyWebhook('github')
  @Idempotent({ key: 'github', transaction: true })
  async github(
    @Headers('x-github-event') type: string | undefined,
    @Headers('x-github-delivery') delivery: string,
    @IdempotentTransaction() em: EntityManager,
  ) {
    await em.insert(WebhookEvent, { provider: 'github', eventId: delivery, type: type ?? 'unknown' });
    return { received: delivery };
  }

  /** Any Standard Webhooks sender (Svix, and the services built on it): `{ type, ... }` per message id. */
  @Post('standard')
  @HttpCode(200)
  @VerifyWebhook('standard-webhooks')
  @Idempotent({ key: 'standard-webhooks', transaction: true })
  async standard(@Headers('webhook-id') id: string, @Body() body: { type?: string }, @IdempotentTransaction() em: EntityManager) {
    await em.insert(WebhookEvent, { provider: 'standard-webhooks', eventId: id, type: body.type ?? 'unknown' });
    return { received: id };
  }

  @Get('events')
  events() {
    return this.dataSource.getRepository(WebhookEvent).find({ order: { id: 'ASC' } });
  }

  @Get('subscriptions')
  subscriptions() {
    return this.dataSource.getRepository(Subscription).find({ order: { id: 'ASC' } });
  }
}
