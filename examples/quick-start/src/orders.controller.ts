import { Body, Controller, Post } from '@nestjs/common';
import { InjectRepository } from '@nestjs/typeorm';
import { Idempotent } from 'nestjs-idempotency';
import { Repository } from 'typeorm';
import { Order } from './order.entity.js';

interface CreateOrder {
  sku: string;
  quantity: number;
}

@Controller('orders')
export class OrdersController {
  constructor(@InjectRepository(Order) private readonly orders: Repository<Order>) {}

  @Post()
  @Idempotent()
  create(@Body() body: CreateOrder): Promise<Order> {
    return this.orders.save(this.orders.create({ sku: body.sku, quantity: body.quantity }));
  }
}
