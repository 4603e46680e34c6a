import { Body, Controller, Get, HttpCode, Post } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Idempotent, IdempotentTransaction } from 'nestjs-idempotency';
import type { DataSource, EntityManager } from 'typeorm';
import { Order } from './order.entity';
import { Payment } from './payment.entity';

/** A provider-style event, as payment providers deliver them: at least once. */
export interface PaymentEvent {
  id: string;
  type: string;
  data?: { orderId?: number; amount?: number };
}

@Controller('payments')
export class PaymentsController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /**
   * Applies each event once, keyed by its event id; redeliveries get the first answer. Records are
   * kept for 3 days, longer than the provider keeps retrying.
   */
  @Post('webhook')
  @HttpCode(200)
  @Idempotent({ key: (req: { body?: Partial<PaymentEvent> }) => req.body?.id, ttl: '3d', transaction: true })
  async receive(@Body() event: PaymentEvent, @IdempotentTransaction() em: EntityManager) {
    const orderId = event.data?.orderId ?? null;
    const payment = await em.save(
      em.create(Payment, { eventId: event.id, type: event.type, orderId, amount: event.data?.amount ?? 0 }),
    );
    if (event.type === 'payment.succeeded' && orderId !== null) await em.update(Order, { id: orderId }, { paid: true });
    return { received: true, paymentId: payment.id };
  }

  @Get()
  list() {
    return this.dataSource.getRepository(Payment).find({ order: { id: 'ASC' } });
  }
}
