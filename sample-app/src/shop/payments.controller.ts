import { Controller, Get } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { Payment } from './payment.entity';

/** The payments applied by `POST /webhooks/stripe` (`payment_intent.succeeded`). */
@Controller('payments')
export class PaymentsController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Get()
  list() {
    return this.dataSource.getRepository(Payment).find({ order: { id: 'ASC' } });
  }
}
