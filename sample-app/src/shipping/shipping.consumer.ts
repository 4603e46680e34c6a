import { Controller, Get, Logger } from '@nestjs/common';
import { EventPattern, Payload, RpcException } from '@nestjs/microservices';
import { InjectDataSource } from '@nestjs/typeorm';
import { Idempotent, IdempotentTransaction } from 'nestjs-idempotency';
import type { DataSource, EntityManager } from 'typeorm';
import { Order } from '../shop/order.entity';
import { Shipment } from './shipment.entity';

/** The event the warehouse publishes on RabbitMQ, with the AMQP `messageId` property set to the event's id. */
export interface OrderShipped {
  orderId: number;
  carrier: string;
  tracking: string;
}

/**
 * Marks orders shipped from `order.shipped` events. RabbitMQ delivers at least once (a redelivery after a crash, a
 * warehouse that publishes again after a timeout): the claim makes each event id take effect once, and the
 * shipment, the order's mark and the record of the event commit in one transaction, before the ack.
 */
@Controller('shipments')
export class ShippingConsumer {
  private readonly logger = new Logger('Shipping');

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  // <string>: Nest 12's first overload of @EventPattern() would type the handler's other parameters as unknown.
  @EventPattern<string>('order.shipped')
  @Idempotent({ key: 'message-id', ack: true, transaction: true })
  async shipped(@Payload() event: OrderShipped, @IdempotentTransaction() em: EntityManager) {
    // An RpcException is the event's final answer: stored and acked, so a bad event is not delivered again and again.
    if (!Number.isInteger(event?.orderId) || typeof event.carrier !== 'string' || typeof event.tracking !== 'string') {
      throw new RpcException({ code: 'INVALID_EVENT', message: 'order.shipped needs orderId, carrier and tracking.' });
    }
    if (!(await em.existsBy(Order, { id: event.orderId }))) throw new RpcException({ code: 'UNKNOWN_ORDER', message: `No order ${event.orderId}.` });
    await em.insert(Shipment, { orderId: event.orderId, carrier: event.carrier, tracking: event.tracking });
    await em.update(Order, { id: event.orderId }, { shippedAt: new Date() });
    this.logger.log(`Order ${event.orderId} shipped with ${event.carrier} (${event.tracking})`);
  }

  @Get()
  list() {
    return this.dataSource.getRepository(Shipment).find({ order: { id: 'ASC' } });
  }
}
