import { BadRequestException, Body, Controller, Get, NotFoundException, Param, ParseIntPipe, type PipeTransform, Post } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { type ClaimIdentity, Idempotent, IdempotencyKey, IdempotentTransaction } from 'nestjs-idempotency';
import type { DataSource, EntityManager } from 'typeorm';
import { Order } from './order.entity';
import { PaymentProviderClient } from './payment-provider.client';
import { type PlaceOrder, placeOrder } from './place-order';

/** The catalogue has no prices: every item costs 5.00 here. */
const UNIT_PRICE_CENTS = 500;

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
  constructor(
    @InjectDataSource() private readonly dataSource: DataSource,
    private readonly provider: PaymentProviderClient,
  ) {}

  /**
   * Places an order once per Idempotency-Key. The stock decrement, the order row and the stored
   * response commit in one transaction: a retry after a crash can neither lose nor repeat them.
   */
  @Post()
  @Idempotent({ transaction: true })
  place(@Body(ParsePlaceOrder) order: PlaceOrder, @IdempotentTransaction() em: EntityManager) {
    return placeOrder(em, order);
  }

  /**
   * Pays an order once per Idempotency-Key, with a charge at the payment provider. Lease mode: the charge happens
   * elsewhere, where no transaction of ours could undo it. The provider gets a key derived from this claim, so a
   * retry after a crash (once the lease ran out) asks for the same charge, which the provider answers without
   * charging again. The lease is short, and renewed while the handler runs: a dead attempt is taken over 5 s later.
   */
  @Post(':id/pay')
  @Idempotent({ lease: '5s' })
  async pay(@Param('id', ParseIntPipe) id: number, @IdempotencyKey() claim: ClaimIdentity) {
    const orders = this.dataSource.getRepository(Order);
    const order = await orders.findOneBy({ id });
    if (!order) throw new NotFoundException(`No order ${id}.`);
    const charge = await this.provider.charge({ amount: order.quantity * UNIT_PRICE_CENTS, reference: `order-${id}` }, claim.derive('charge'));
    await orders.update({ id }, { paid: true });
    return { order: { ...order, paid: true }, charge };
  }

  @Get()
  list() {
    return this.dataSource.getRepository(Order).find({ order: { id: 'ASC' } });
  }
}
