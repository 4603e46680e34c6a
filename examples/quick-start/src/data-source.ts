import { idempotencyEntities, idempotencyMigrations } from 'nestjs-idempotency';
import { DataSource, type DataSourceOptions } from 'typeorm';
import { CreateOrders1767225600000 } from './create-orders.migration.js';
import { Order } from './order.entity.js';

export const dataSourceOptions: DataSourceOptions = {
  type: 'postgres',
  url: process.env.DATABASE_URL,
  entities: [Order, ...idempotencyEntities],
  migrations: [CreateOrders1767225600000, ...idempotencyMigrations],
};

// For the typeorm CLI: npx typeorm migration:run -d dist/data-source.js
export default new DataSource(dataSourceOptions);
