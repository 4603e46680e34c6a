import { type DynamicModule, Module } from '@nestjs/common';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { GraphQLModule } from '@nestjs/graphql';
import { TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { IdempotencyApolloPlugin, idempotencyEntities, idempotencyMigrations, IdempotencyModule } from 'nestjs-idempotency';
import { IdempotencyHealthModule } from 'nestjs-idempotency/terminus';
import { HealthController } from './health.controller';
import type { Database } from './database';
import { CreateShop1763900000100 } from './shop/migrations/1763900000100-create-shop';
import { Order } from './shop/order.entity';
import { OrdersController } from './shop/orders.controller';
import { OrdersResolver } from './shop/orders.resolver';
import { Payment } from './shop/payment.entity';
import { PaymentsController } from './shop/payments.controller';
import { CreateWebhookTables1763900000200 } from './webhooks/migrations/1763900000200-create-webhook-tables';
import { Subscription } from './webhooks/subscription.entity';
import { WebhookEvent } from './webhooks/webhook-event.entity';
import { WEBHOOK_SECRETS } from './webhooks/webhook-secrets';
import { WebhooksController } from './webhooks/webhooks.controller';
import { QUEUE_PREFIX, REDIS_URL } from './fulfilment/fulfilment';
import { FulfilmentWorker } from './fulfilment/fulfilment.worker';
import { CreateReceipts1763900000300 } from './fulfilment/migrations/1763900000300-create-receipts';
import { Receipt } from './fulfilment/receipt.entity';
import { ReceiptsController } from './fulfilment/receipts.controller';
import { Product } from './shop/product.entity';
import { StockController } from './shop/stock.controller';
import { MetricsController } from './metrics/metrics.controller';
import { CreateProviderCharges1763900000400 } from './provider/migrations/1763900000400-create-provider-charges';
import { ProviderCharge } from './provider/provider-charge.entity';
import { PaymentProviderModule } from './provider/payment-provider.module';
import { PaymentProviderClient } from './shop/payment-provider.client';

@Module({})
export class AppModule {
  static forDatabase(database: Database): DynamicModule {
    return {
      module: AppModule,
      imports: [
        TypeOrmModule.forRoot({
          ...database.options,
          type: 'postgres',
          entities: [Product, Order, Payment, WebhookEvent, Subscription, Receipt, ProviderCharge, ...idempotencyEntities],
          migrations: [
            CreateShop1763900000100,
            CreateWebhookTables1763900000200,
            CreateReceipts1763900000300,
            CreateProviderCharges1763900000400,
            ...idempotencyMigrations,
          ],
          migrationsRun: true,
          synchronize: false,
        }),
        IdempotencyModule.forRoot({
          ttl: '24h',
          lease: '30s',
          webhooks: {
            stripe: { secret: WEBHOOK_SECRETS.stripe },
            github: { secret: WEBHOOK_SECRETS.github },
            'standard-webhooks': { secret: WEBHOOK_SECRETS.standard },
          },
          // Jobs lost by a Redis that keeps nothing on disk are sent again; the worker's runJob makes that safe.
          outbox: { connection: REDIS_URL, prefix: QUEUE_PREFIX, redeliverAfter: '1m' },
          // Outcome counters and timings in prom-client's global register, served at GET /metrics.
          metrics: true,
        }),
        TerminusModule,
        IdempotencyHealthModule,
        PaymentProviderModule,
        // placeOrder over GraphQL at /graphql; the plugin marks replays in extensions.idempotency.
        GraphQLModule.forRoot<ApolloDriverConfig>({ driver: ApolloDriver, autoSchemaFile: true, plugins: [new IdempotencyApolloPlugin()] }),
      ],
      controllers: [OrdersController, PaymentsController, StockController, WebhooksController, ReceiptsController, MetricsController, HealthController],
      providers: [FulfilmentWorker, PaymentProviderClient, OrdersResolver],
    };
  }
}
