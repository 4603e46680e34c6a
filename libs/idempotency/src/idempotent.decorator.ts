import { SetMetadata } from '@nestjs/common';
import { IDEMPOTENT_OPTIONS } from './idempotency.constants';
import type { IdempotentOptions } from './idempotency.options';
import type { IdempotencyRequest } from './idempotency-request';
import { assertKeySource } from './keys/key-source';
import { assertMutationKeySource, isMutationKeySourceItem } from './graphql/mutation-keys';
import type { IdempotentMutationOptions } from './graphql/mutation-options';

/**
 * Makes a route (or every route of a controller), or a GraphQL mutation resolver (or every mutation of a resolver
 * class), idempotent: each (scope, key) runs the handler once, and every repeat gets the first answer. Options
 * override the `forRoot()` defaults for this route.
 *
 * @example
 * \@Post('orders') \@Idempotent()                          // key from the Idempotency-Key header
 * \@Post('webhooks/stripe') \@Idempotent({ key: 'stripe' }) // Stripe's event id
 * \@Post('x') \@Idempotent({ key: (req: Request) => req.body.eventId, onInFlight: 'wait' })
 * \@Mutation(() => Order) \@Idempotent({ key: { argument: 'idempotencyKey' } }) // see docs/graphql.md
 */
export function Idempotent<TRequest = IdempotencyRequest>(options?: IdempotentOptions<TRequest>): ClassDecorator & MethodDecorator;
export function Idempotent<TArgs = Record<string, unknown>, TContext = unknown>(
  options: IdempotentMutationOptions<TArgs, TContext>,
): ClassDecorator & MethodDecorator;
export function Idempotent(options: IdempotentOptions<never> | IdempotentMutationOptions<never> = {}): ClassDecorator & MethodDecorator {
  // The rest (durations, and what depends on the module's defaults) is checked at start, with the route named;
  // whether a key source fits is known there too (a mutation's may read an argument, a route's a preset).
  const where = '@Idempotent()';
  const { key } = options;
  const items: readonly unknown[] = key === undefined ? [] : Array.isArray(key) ? key : [key];
  if (items.some((item) => typeof item === 'object' && item !== null && 'argument' in item)) assertMutationKeySource(key, where);
  else if (!items.every(isMutationKeySourceItem)) assertKeySource(key as IdempotentOptions<never>['key'] & object, where);
  return SetMetadata(IDEMPOTENT_OPTIONS, options);
}
