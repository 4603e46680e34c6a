import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IDEMPOTENT_OPTIONS } from '../idempotency.constants';
import { IDEMPOTENCY_MODULE_OPTIONS } from '../idempotency.module-definition';
import type { IdempotencyModuleOptions, IdempotentOptions } from '../idempotency.options';
import { IDEMPOTENCY_STORE, type IdempotencyStore, isTransactional } from '../storage/idempotency-store';
import { type ModuleDefaults, resolveModuleDefaults } from './module-defaults';
import { ConfigurationProblems } from './option-rules';
import type { RoutePlan } from './route-plan';
import { resolveRoutePlan } from './route-plan.resolver';

type Controller = abstract new (...args: never[]) => unknown;

/**
 * The plan of every `@Idempotent()` route of the app (on the method or its controller), built and checked
 * when the module starts: a wrong option, or a route that needs transactions on a store without them,
 * fails `app.init()` with every wrong route named, before any request. Requests only look plans up.
 */
@Injectable()
export class RoutePlans implements OnModuleInit {
  private readonly plans = new Map<Controller, Map<object, RoutePlan>>();
  private resolvedDefaults?: ModuleDefaults;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @Inject(IDEMPOTENCY_STORE) private readonly store: IdempotencyStore,
    @Inject(IDEMPOTENCY_MODULE_OPTIONS) private readonly options: IdempotencyModuleOptions,
  ) {}

  /** The module's own options, checked; the first reader resolves them (the start, unless `run()` comes earlier). */
  get defaults(): ModuleDefaults {
    return (this.resolvedDefaults ??= resolveModuleDefaults(this.options));
  }

  onModuleInit(): void {
    // Routes inherit the module's values: with those wrong, each route would repeat the same mistake.
    this.resolvedDefaults ??= resolveModuleDefaults(this.options);
    const problems = new ConfigurationProblems();
    for (const { controller, handler, name, route } of this.idempotentRoutes()) {
      const plan = problems.check(() => this.checked(resolveRoutePlan(this.options, route, name)));
      if (!plan) continue;
      let byHandler = this.plans.get(controller);
      if (!byHandler) this.plans.set(controller, (byHandler = new Map<object, RoutePlan>()));
      byHandler.set(handler, plan);
    }
    problems.throwIfAny();
  }

  /** The plan of a route handler, or `undefined` for a route that is not idempotent. */
  planFor(controller: object, handler: object): RoutePlan | undefined {
    return this.plans.get(controller as Controller)?.get(handler);
  }

  private checked(plan: RoutePlan): RoutePlan {
    if ((plan.transaction || plan.order) && !isTransactional(this.store)) {
      throw new IdempotencyConfigurationError(
        `@Idempotent() on ${plan.name} needs transaction mode (transaction: true or order), which needs a store that holds ` +
          `claims in transactions, as the PostgreSQL store does; this app's store (${storeName(this.options)}) does not. ` +
          "Use lease mode on this route (transaction: false, without order), or a SQL store (the app's DataSource on PostgreSQL, MySQL or MariaDB).",
      );
    }
    return plan;
  }

  private *idempotentRoutes(): Generator<{ controller: Controller; handler: object; name: string; route: IdempotentOptions }> {
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as Controller | null | undefined;
      const prototype = controller?.prototype as Record<string, unknown> | undefined;
      if (!controller || !prototype) continue;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[method];
        // Only route handlers: a class-level @Idempotent() does not make the controller's helpers routes.
        if (typeof handler !== 'function' || Reflect.getMetadata(PATH_METADATA, handler) === undefined) continue;
        const route = this.reflector.getAllAndOverride<IdempotentOptions | undefined>(IDEMPOTENT_OPTIONS, [handler, controller]);
        if (route) yield { controller, handler, name: `${controller.name}.${method}`, route };
      }
    }
  }
}

function storeName(options: IdempotencyModuleOptions): string {
  const store = options.store;
  if (typeof store === 'object' && store !== null && 'type' in store && store.type === 'redis') return 'Redis';
  return typeof store === 'object' && store !== null ? store.constructor.name : 'PostgreSQL';
}
