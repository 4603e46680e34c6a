import { Inject, Injectable, type OnApplicationBootstrap } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IDEMPOTENT_OPTIONS } from '../idempotency.constants';
import { IDEMPOTENCY_MODULE_OPTIONS } from '../idempotency.module-definition';
import type { IdempotencyModuleOptions, IdempotentOptions } from '../idempotency.options';
import { IDEMPOTENCY_STORE, type IdempotencyStore, type TransactionalIdempotencyStore } from './idempotency-store';

/**
 * Fails the start of an app whose routes need transaction mode (`transaction: true`, `order`) while its
 * store cannot hold a claim in a transaction (Redis): better than a 500 on the first such request.
 */
@Injectable()
export class StoreCapabilityCheck implements OnApplicationBootstrap {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @Inject(IDEMPOTENCY_STORE) private readonly store: IdempotencyStore,
    @Inject(IDEMPOTENCY_MODULE_OPTIONS) private readonly options: IdempotencyModuleOptions,
  ) {}

  onApplicationBootstrap(): void {
    if (typeof (this.store as Partial<TransactionalIdempotencyStore>).claimInTransaction === 'function') return;
    const routes = this.transactionalRoutes();
    if (routes.length === 0) return;
    throw new IdempotencyConfigurationError(
      `${routes.join(', ')} ${routes.length === 1 ? 'needs' : 'need'} transaction mode (transaction: true or order), which only the ` +
        `PostgreSQL store has; this app's store (${storeName(this.options)}) has none. Use lease mode on ` +
        "these routes (transaction: false, without order), or store: 'postgres'.",
    );
  }

  private transactionalRoutes(): string[] {
    const routes: string[] = [];
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as (new (...args: never[]) => unknown) | undefined;
      if (!controller?.prototype) continue;
      for (const method of this.scanner.getAllMethodNames(controller.prototype)) {
        const handler = (controller.prototype as Record<string, () => unknown>)[method];
        const route = this.reflector.getAllAndOverride<IdempotentOptions | undefined>(IDEMPOTENT_OPTIONS, [handler, controller]);
        if (route && (route.order || (route.transaction ?? this.options.transaction))) routes.push(`${controller.name}.${method}`);
      }
    }
    return routes;
  }
}

function storeName(options: IdempotencyModuleOptions): string {
  const store = options.store;
  if (typeof store === 'object' && store !== null && 'type' in store && store.type === 'redis') return 'Redis';
  return typeof store === 'object' && store !== null ? store.constructor.name : 'PostgreSQL';
}
