import { Module } from '@nestjs/common';
import { TypeOrmModule } from '@nestjs/typeorm';
import { IdempotencyModule } from 'nestjs-idempotency';
import { dataSourceOptions } from './data-source.js';
import { OrdersController } from './orders.controller.js';

@Module({
  imports: [
    // Migrations run once per deploy, before the new instances start (see data-source.ts), not at every start.
    TypeOrmModule.forRoot({ ...dataSourceOptions, migrationsRun: false }),
    IdempotencyModule.forRoot({ ttl: '24h', lease: '60s' }),
  ],
  controllers: [OrdersController],
})
export class AppModule {}
