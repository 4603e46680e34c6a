import { Controller, Get } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { Receipt } from './receipt.entity';

@Controller('receipts')
export class ReceiptsController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Get()
  list() {
    return this.dataSource.getRepository(Receipt).find({ order: { id: 'ASC' } });
  }
}
