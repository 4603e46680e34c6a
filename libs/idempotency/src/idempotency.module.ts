import { type DynamicModule, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import type { DataSourceLike } from './storage/typeorm-like';
import { ClaimCoordinator } from './claim/claim-coordinator';
import {
  ConfigurableIdempotencyModule,
  IDEMPOTENCY_MODULE_OPTIONS,
  type IDEMPOTENCY_ASYNC_OPTIONS_TYPE,
  type IDEMPOTENCY_OPTIONS_TYPE,
} from './idempotency.module-definition';
import { IdempotencyService } from './idempotency.service';
import { IdempotencyContext } from './idempotency-context';
import { ClaimContextSwitch } from './claim/claim-context-switch';
import { JobOutbox, OUTBOX_DATA_SOURCE } from './outbox/job-outbox';
import { OutboxRelay } from './outbox/outbox-relay';
import { IdempotencyMetrics } from './observability/idempotency-metrics';
import type { IdempotencyModuleOptions } from './idempotency.options';
import { appDataSource, missingDataSource } from './storage/app-data-source';
import { withEncryptionAtRest } from './storage/encryption/encrypted-store';
import { IDEMPOTENCY_STORE } from './storage/idempotency-store';
import { OpenedStore, openStore } from './storage/open-store';
import { RoutePlans } from './plan/route-plans';
import { MutationPlans } from './graphql/mutation-plans';
import { IdempotentMutations } from './graphql/idempotent-mutations';
import { MessageClaims } from './messages/message-claims';
import { MessagePlans } from './messages/message-plans';

/**
 * Makes `@Idempotent()` routes work across the app and provides `IdempotencyService`. It is global:
 * import it once, next to `TypeOrmModule.forRoot()`, whose DataSource (and pool) it uses.
 *
 * @example
 * \@Module({
 *   imports: [
 *     // Migrations run as a deploy step (`npx typeorm migration:run -d data-source.js`), not at start.
 *     TypeOrmModule.forRoot({ type: 'postgres', url, entities: [Order, ...idempotencyEntities],
 *                             migrations: [...idempotencyMigrations] }),
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
  // Optional: an app that keeps its records in Redis may have no TypeORM at all.
  const source = appDataSource(dataSource);
  return {
    ...module,
    global: true,
    imports: [...(module.imports ?? []), DiscoveryModule],
    providers: [
      ...(module.providers ?? []),
      {
        // Its own provider, so that Nest closes the connection it may have opened.
        provide: OpenedStore,
        useFactory: (options: IdempotencyModuleOptions, dataSource?: DataSourceLike) => openStore(options, dataSource, source.missing),
        inject: [IDEMPOTENCY_MODULE_OPTIONS, ...source.inject],
      },
      {
        provide: IDEMPOTENCY_STORE,
        // Also without `encryption`: an encrypted body left from when it was on is then refused, never replayed as is.
        useFactory: (opened: OpenedStore, options: IdempotencyModuleOptions) => withEncryptionAtRest(opened.store, options.encryption),
        inject: [OpenedStore, IDEMPOTENCY_MODULE_OPTIONS],
      },
      RoutePlans,
      MutationPlans,
      IdempotentMutations,
      MessagePlans,
      MessageClaims,
      ClaimCoordinator,
      IdempotencyService,
      IdempotencyContext,
      ClaimContextSwitch,
      { provide: OUTBOX_DATA_SOURCE, useFactory: (dataSource?: DataSourceLike) => dataSource ?? null, inject: source.inject },
      JobOutbox,
      {
        // Only where the outbox is configured with a relay in this process; Nest starts and stops it with the app.
        provide: OutboxRelay,
        useFactory: (options: IdempotencyModuleOptions, outbox: JobOutbox, dataSource?: DataSourceLike) => {
          if (!options.outbox || options.outbox.relay === false) return null;
          if (!dataSource) throw missingDataSource('The outbox relay', source.missing, 'import TypeOrmModule.forRoot() beside IdempotencyModule.');
          const relay = new OutboxRelay(dataSource, options.outbox);
          outbox.onCommit(() => relay.wake());
          return relay;
        },
        inject: [IDEMPOTENCY_MODULE_OPTIONS, JobOutbox, ...source.inject],
      },
      {
        // Only with the metrics option; loads prom-client, and stops counting with the app.
        provide: IdempotencyMetrics,
        // Counts what this module's coordinator publishes: another app in the process counts its own.
        useFactory: (options: IdempotencyModuleOptions, coordinator: ClaimCoordinator) => IdempotencyMetrics.start(options.metrics, coordinator),
        inject: [IDEMPOTENCY_MODULE_OPTIONS, ClaimCoordinator],
      },
    ],
    // The options are exported for the guard of @VerifyWebhook(), and the coordinator and plans for the interceptor of
    // @Idempotent(): Nest builds both in the controller's module. OutboxRelay stays private: it is null where this
    // process does not relay.
    exports: [
      ...(module.exports ?? []),
      IdempotencyService,
      IdempotencyContext,
      IDEMPOTENCY_STORE,
      IDEMPOTENCY_MODULE_OPTIONS,
      JobOutbox,
      RoutePlans,
      ClaimCoordinator,
      IdempotentMutations,
      MessageClaims,
    ],
  };
}
