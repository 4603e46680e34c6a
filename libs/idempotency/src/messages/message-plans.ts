import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner, Reflector } from '@nestjs/core';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IDEMPOTENT_OPTIONS } from '../idempotency.constants';
import { IDEMPOTENCY_MODULE_OPTIONS } from '../idempotency.module-definition';
import type { IdempotencyModuleOptions } from '../idempotency.options';
import { ConfigurationProblems } from '../plan/option-rules';
import { IDEMPOTENCY_STORE, type IdempotencyStore, isTransactional } from '../storage/idempotency-store';
import { type MessageKind, type MessagePlan, resolveMessagePlan } from './message-plan';
import type { IdempotentMessageOptions } from './message-options';

// The metadata @MessagePattern() and @EventPattern() leave on a handler (read by name: @nestjs/microservices
// is an optional peer). Nest's PatternHandler: 1 answers, 2 is an event.
const PATTERN_METADATA = 'microservices:pattern';
const PATTERN_HANDLER_METADATA = 'microservices:handler_type';
const EVENT_HANDLER = 2;

type Controller = abstract new (...args: never[]) => unknown;

/**
 * The plan of every `@Idempotent()` message handler of the app, built and checked when the module starts, as
 * `RoutePlans` does for HTTP routes: a wrong option stops `app.init()` with the handler named.
 */
@Injectable()
export class MessagePlans implements OnModuleInit {
  private readonly plans = new Map<Controller, Map<object, MessagePlan>>();

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly reflector: Reflector,
    @Inject(IDEMPOTENCY_STORE) private readonly store: IdempotencyStore,
    @Inject(IDEMPOTENCY_MODULE_OPTIONS) private readonly options: IdempotencyModuleOptions,
  ) {}

  onModuleInit(): void {
    const problems = new ConfigurationProblems();
    for (const { controller, handler, ...target } of this.idempotentHandlers()) {
      const plan = problems.check(() => this.checked(resolveMessagePlan(this.options, target.options, target)));
      if (!plan) continue;
      let byHandler = this.plans.get(controller);
      if (!byHandler) this.plans.set(controller, (byHandler = new Map<object, MessagePlan>()));
      byHandler.set(handler, plan);
    }
    problems.throwIfAny();
  }

  /** The plan of a message handler, or `undefined` for one that is not idempotent. */
  planFor(controller: object, handler: object): MessagePlan | undefined {
    return this.plans.get(controller as Controller)?.get(handler);
  }

  private checked(plan: MessagePlan): MessagePlan {
    if (plan.transaction && !isTransactional(this.store)) {
      throw new IdempotencyConfigurationError(
        `@Idempotent() on ${plan.name} needs transaction mode, which needs a store that holds claims in transactions ` +
          "(the app's DataSource on PostgreSQL, MySQL or MariaDB). Use lease mode on this handler (transaction: false).",
      );
    }
    return plan;
  }

  private *idempotentHandlers(): Generator<{
    controller: Controller;
    handler: object;
    name: string;
    kind: MessageKind;
    patterns: string[];
    options: IdempotentMessageOptions & Record<string, unknown>;
  }> {
    for (const wrapper of this.discovery.getControllers()) {
      const controller = wrapper.metatype as Controller | null | undefined;
      const prototype = controller?.prototype as Record<string, unknown> | undefined;
      if (!controller || !prototype) continue;
      for (const method of this.scanner.getAllMethodNames(prototype)) {
        const handler = prototype[method];
        if (typeof handler !== 'function') continue;
        const patterns = Reflect.getMetadata(PATTERN_METADATA, handler) as unknown[] | undefined;
        if (!patterns) continue;
        const options = this.reflector.getAllAndOverride<IdempotentMessageOptions | undefined>(IDEMPOTENT_OPTIONS, [handler, controller]);
        if (!options) continue;
        const kind: MessageKind = Reflect.getMetadata(PATTERN_HANDLER_METADATA, handler) === EVENT_HANDLER ? 'event' : 'request';
        yield {
          controller,
          handler,
          name: `${controller.name}.${method}`,
          kind,
          patterns: patterns.map(patternText),
          options: options as IdempotentMessageOptions & Record<string, unknown>,
        };
      }
    }
  }
}

/** A pattern as text: strings as they are, object patterns as JSON with sorted keys (as Nest normalizes them). */
export function patternText(pattern: unknown): string {
  if (typeof pattern === 'string') return pattern;
  if (typeof pattern !== 'object' || pattern === null) return String(pattern);
  const record = pattern as Record<string, unknown>;
  return JSON.stringify(
    Object.fromEntries(
      Object.keys(record)
        .sort()
        .map((key) => [key, record[key]]),
    ),
  );
}
