import { type DynamicModule, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { getDataSourceToken } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { ClaimCoordinator } from './claim-coordinator';
import {
  ConfigurableIdempotencyModule,
  IDEMPOTENCY_MODULE_OPTIONS,
  type IDEMPOTENCY_ASYNC_OPTIONS_TYPE,
  type IDEMPOTENCY_OPTIONS_TYPE,
} from './idempotency.module-definition';
import { IdempotencyInterceptor } from './idempotency.interceptor';
import { IdempotencyService } from './idempotency.service';
import { JobOutbox, OUTBOX_DATA_SOURCE } from './outbox/job-outbox';
import { OutboxRelay } from './outbox/outbox-relay';
import type { IdempotencyModuleOptions } from './idempotency.options';
import { IDEMPOTENCY_STORE } from './storage/idempotency-store';
import { PartitionedTypeOrmIdempotencyStore } from './storage/partitioned-typeorm-idempotency.store';
import { TypeOrmIdempotencyStore } from './storage/typeorm-idempotency.store';

/**
 * Makes `@Idempotent()` routes work across the app and provides `IdempotencyService`. It is global:
 * import it once, next to `TypeOrmModule.forRoot()`, whose DataSource (and pool) it uses.
 *
 * @example
 * \@Module({
 *   imports: [
 *     TypeOrmModule.forRoot({ type: 'postgres', url, entities: [Order, ...idempotencyEntities],
 *                             migrations: [...idempotencyMigrations], migrationsRun: true }),
 *     IdempotencyModule.forRoot({ ttl: '24h', lease: '60s' }),
 *   ],
 * })
 * export class AppModule {}
 */
@Module({})
export class IdempotencyModule extends ConfigurableIdempotencyModule {
  static override forRoot(options: typeof IDEMPOTENCY_OPTIONS_TYPE = {}): DynamicModule {
    return withProviders(super.forRoot(options), options.dataSource);
  }

  static override forRootAsync(options: typeof IDEMPOTENCY_ASYNC_OPTIONS_TYPE): DynamicModule {
    return withProviders(super.forRootAsync(options), options.dataSource);
  }
}

/** `dataSource` is read here, not in the options factory, because it decides what is injected. */
function withProviders(module: DynamicModule, dataSource: string | undefined): DynamicModule {
  return {
    ...module,
    global: true,
    providers: [
      ...(module.providers ?? []),
      {
        provide: IDEMPOTENCY_STORE,
        useFactory: (source: DataSource, options: IdempotencyModuleOptions) =>
          options.partitioning
            ? new PartitionedTypeOrmIdempotencyStore(source, { preparedStatements: options.preparedStatements, ...options.partitioning })
            : new TypeOrmIdempotencyStore(source, { preparedStatements: options.preparedStatements }),
        inject: [getDataSourceToken(dataSource), IDEMPOTENCY_MODULE_OPTIONS],
      },
      ClaimCoordinator,
      IdempotencyService,
      { provide: OUTBOX_DATA_SOURCE, useExisting: getDataSourceToken(dataSource) },
      JobOutbox,
      {
        // Only where the outbox is configured with a relay in this process; Nest starts and stops it with the app.
        provide: OutboxRelay,
        useFactory: (options: IdempotencyModuleOptions, source: DataSource, outbox: JobOutbox) => {
          if (!options.outbox || options.outbox.relay === false) return null;
          const relay = new OutboxRelay(source, options.outbox);
          outbox.onCommit(() => relay.wake());
          return relay;
        },
        inject: [IDEMPOTENCY_MODULE_OPTIONS, getDataSourceToken(dataSource), JobOutbox],
      },
      { provide: APP_INTERCEPTOR, useClass: IdempotencyInterceptor },
    ],
    // The options are exported for the guard of @VerifyWebhook(), which Nest builds in the controller's module.
    // OutboxRelay stays private: it is null where this process does not relay.
    exports: [...(module.exports ?? []), IdempotencyService, IDEMPOTENCY_STORE, IDEMPOTENCY_MODULE_OPTIONS, JobOutbox],
  };
}
