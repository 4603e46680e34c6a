import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IDEMPOTENT_OPTIONS } from '../idempotency.constants';
import { IDEMPOTENCY_MODULE_OPTIONS } from '../idempotency.module-definition';
import type { IdempotencyModuleOptions } from '../idempotency.options';
import { ConfigurationProblems } from '../plan/option-rules';
import { IDEMPOTENCY_STORE, type IdempotencyStore, isTransactional } from '../storage/idempotency-store';
import type { IdempotentMutationOptions } from './mutation-options';
import { type MutationPlan, resolveMutationPlan } from './mutation-plan';

/** `@nestjs/graphql`'s metadata on a resolver method (`'Query' | 'Mutation' | 'Subscription'`), read without importing it. */
const RESOLVER_TYPE_METADATA = 'graphql:resolver_type';

type Resolver = abstract new (...args: never[]) => unknown;

/**
 * The plan of every `@Idempotent()` mutation of the app (on the method or its resolver class), built and checked
 * when the module starts, like the routes' (`RoutePlans`): a wrong option fails `app.init()` naming the resolver.
 * `@Idempotent()` on a query or subscription method is refused too: only a mutation's effect needs it.
 */
@Injectable()
export class MutationPlans implements OnModuleInit {
  private readonly plans = new Map<Resolver, Map<object, MutationPlan>>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @Inject(IDEMPOTENCY_STORE) private readonly store: IdempotencyStore,
    @Inject(IDEMPOTENCY_MODULE_OPTIONS) private readonly options: IdempotencyModuleOptions,
  ) {}

  onModuleInit(): void {
    const problems = new ConfigurationProblems();
    for (const { resolver, handler, name, type, options } of this.idempotentFields()) {
      const plan = problems.check(() => this.checked(type, options, name));
      if (!plan) continue;
      let byHandler = this.plans.get(resolver);
      if (!byHandler) this.plans.set(resolver, (byHandler = new Map<object, MutationPlan>()));
      byHandler.set(handler, plan);
    }
    problems.throwIfAny();
  }

  /** The plan of a mutation resolver, or `undefined` for one that is not idempotent. */
  planFor(resolver: object, handler: object): MutationPlan | undefined {
    return this.plans.get(resolver as Resolver)?.get(handler);
  }

  private checked(type: string, options: IdempotentMutationOptions, name: string): MutationPlan {
    if (type !== 'Mutation') {
      throw new IdempotencyConfigurationError(
        `@Idempotent() on ${name}, a ${type.toLowerCase()}: only mutations take effect, so only they are made idempotent. Remove it.`,
      );
    }
    const plan = resolveMutationPlan(this.options, options, name);
    if (plan.transaction && !isTransactional(this.store)) {
      throw new IdempotencyConfigurationError(
        `@Idempotent() on ${name} needs transaction mode, which needs a store that holds claims in transactions ` +
          "(the app's DataSource on PostgreSQL, MySQL or MariaDB). Use lease mode (transaction: false), or a SQL store.",
      );
    }
    return plan;
  }

  private *idempotentFields(): Generator<{ resolver: Resolver; handler: object; name: string; type: string; options: IdempotentMutationOptions }> {
    for (const wrapper of this.discovery.getProviders()) {
      const resolver = wrapper.metatype as Resolver | null | undefined;
      const prototype = typeof resolver === 'function' ? (resolver.prototype as Record<string, unknown> | undefined) : undefined;
      if (!resolver || !prototype) continue;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[method];
        if (typeof handler !== 'function') continue;
        const type = Reflect.getMetadata(RESOLVER_TYPE_METADATA, handler) as unknown;
        if (typeof type !== 'string') continue;
        // A class-level @Idempotent() covers the class's mutations; its queries and subscriptions stay as they are.
        const own = this.reflector.get<IdempotentMutationOptions | undefined>(IDEMPOTENT_OPTIONS, handler);
        const options = own ?? (type === 'Mutation' ? this.reflector.get<IdempotentMutationOptions | undefined>(IDEMPOTENT_OPTIONS, resolver) : undefined);
        if (options) yield { resolver, handler, name: `${resolver.name}.${method}`, type, options };
      }
    }
  }
}
