import { SetMetadata } from '@nestjs/common';
import { INTERCEPTORS_METADATA } from '@nestjs/common/constants';
import { IDEMPOTENT_OPTIONS } from './idempotency.constants';
import type { IdempotentOptions } from './idempotency.options';
import type { IdempotencyRequest } from './idempotency-request';
import { IdempotencyInterceptor } from './idempotency.interceptor';
import { assertKeySource } from './keys/key-source';
import { assertMutationKeySource, isMutationKeySourceItem } from './graphql/mutation-keys';
import type { IdempotentMutationOptions } from './graphql/mutation-options';
import { assertMessageKeySource, isMessageKeySource } from './messages/message-keys';
import type { IdempotentMessageOptions } from './messages/message-options';

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
/**
 * Also on an `@EventPattern()` or `@MessagePattern()` handler: each message key runs the handler once (docs/messages.md).
 *
 * @example
 * \@EventPattern('order.shipped') \@Idempotent({ key: 'message-id', ack: true })
 * \@MessagePattern('quote') \@Idempotent({ key: { path: 'requestId' } })
 */
export function Idempotent<TPayload = unknown, TContext = unknown>(options: IdempotentMessageOptions<TPayload, TContext>): ClassDecorator & MethodDecorator;
export function Idempotent<TArgs = Record<string, unknown>, TContext = unknown>(
  options: IdempotentMutationOptions<TArgs, TContext>,
): ClassDecorator & MethodDecorator;
export function Idempotent(
  options: IdempotentOptions<never> | IdempotentMutationOptions<never> | IdempotentMessageOptions = {},
): ClassDecorator & MethodDecorator {
  // The rest (durations, and what depends on the module's defaults) is checked at start, with the route named;
  // whether a key source fits is known there too (a mutation's may read an argument, a message's its id or a path).
  const where = '@Idempotent()';
  const { key } = options;
  const items: readonly unknown[] = key === undefined ? [] : Array.isArray(key) ? key : [key];
  if (isMessageKeySource(key)) assertMessageKeySource(key, where);
  else if (items.some((item) => typeof item === 'object' && item !== null && 'argument' in item)) assertMutationKeySource(key, where);
  else if (!items.every(isMutationKeySourceItem)) assertKeySource(key as IdempotentOptions<never>['key'] & object, where);
  const setOptions = SetMetadata(IDEMPOTENT_OPTIONS, options);
  return (target: object, method?: string | symbol, descriptor?: PropertyDescriptor) => {
    if (method === undefined || descriptor === undefined) {
      setOptions(target as () => void);
      interceptOn(target);
    } else {
      setOptions(target, method, descriptor);
      interceptOn(descriptor.value as object);
    }
  };
}

/**
 * Binds the interceptor where `@Idempotent()` is, the handler or the class, ahead of the interceptors bound there
 * by `@UseInterceptors()`: Nest runs an interceptor chain on every route that has one, so the app's other routes
 * then pay nothing for the library.
 */
function interceptOn(target: object): void {
  const bound = (Reflect.getMetadata(INTERCEPTORS_METADATA, target) ?? []) as unknown[];
  if (!bound.includes(IdempotencyInterceptor)) Reflect.defineMetadata(INTERCEPTORS_METADATA, [IdempotencyInterceptor, ...bound], target);
}
