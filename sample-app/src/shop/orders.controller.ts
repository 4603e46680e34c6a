import { BadRequestException, Body, Controller, Get, type PipeTransform, Post } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Idempotent, IdempotentTransaction } from 'nestjs-idempotency';
import type { DataSource, EntityManager } from 'typeorm';
import { Order } from './order.entity';
import { type PlaceOrder, placeOrder } from './place-order';

/** A malformed body is refused by a pipe, before the handler: the key is released for a corrected retry. */
class ParsePlaceOrder implements PipeTransform<unknown, PlaceOrder> {
  transform(body: unknown): PlaceOrder {
    const { sku, quantity } = (body ?? {}) as Partial<PlaceOrder>;
    if (typeof sku !== 'string' || !Number.isInteger(quantity) || (quantity as number) < 1) {
      throw new BadRequestException('Send { "sku": string, "quantity": positive integer }.');
    }
    return { sku, quantity: quantity as number };
  }
}

@Controller('orders')
export class OrdersController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  /**
   * Places an order once per Idempotency-Key. The stock decrement, the order row and the stored
   * response commit in one transaction: a retry after a crash can neither lose nor repeat them.
   */
  @Post()
  @Idempotent({ transaction: true })
  place(@Body(ParsePlaceOrder) order: PlaceOrder, @IdempotentTransaction() em: EntityManager) {
    return placeOrder(em, order);
  }

  @Get()
  list() {
    return this.dataSource.getRepository(Order).find({ order: { id: 'ASC' } });
  }
}
