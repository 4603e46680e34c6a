import { Body, Controller, Post } from '@nestjs/common';
import { Idempotent, IdempotentTransaction } from 'nestjs-idempotency';
import type { EntityManager } from 'typeorm';
import { Order } from './order.entity.js';

interface CreateOrder {
  sku: string;
  quantity: number;
}

@Controller('orders')
export class OrdersController {
  // transaction: true puts the order and the stored answer in one transaction: a crash leaves both or neither.
  @Post()
  @Idempotent({ transaction: true })
  create(@Body() body: CreateOrder, @IdempotentTransaction() manager: EntityManager): Promise<Order> {
    return manager.save(manager.create(Order, { sku: body.sku, quantity: body.quantity }));
  }
}
