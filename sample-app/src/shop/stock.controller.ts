import { Controller, Get } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { Product } from './product.entity';

@Controller('stock')
export class StockController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Get()
  list() {
    return this.dataSource.getRepository(Product).find({ order: { sku: 'ASC' } });
  }
}
