import { SetMetadata } from '@nestjs/common';
import { IDEMPOTENT_OPTIONS } from './idempotency.constants';
import type { IdempotentOptions } from './idempotency.options';
import type { IdempotencyRequest } from './idempotency-request';
import { assertKeySource, type KeySource } from './keys/key-source';
import { assertMessageKeySource, isMessageKeySource } from './messages/message-keys';
import type { IdempotentMessageOptions } from './messages/message-options';

/**
 * Also on an `@EventPattern()` or `@MessagePattern()` handler: each message key runs the handler once (docs/messages.md).
 *
 * @example
 * \@EventPattern('order.shipped') \@Idempotent({ key: 'message-id', ack: true })
 * \@MessagePattern('quote') \@Idempotent({ key: { path: 'requestId' } })
 */
export function Idempotent<TPayload = unknown, TContext = unknown>(options: IdempotentMessageOptions<TPayload, TContext>): ClassDecorator & MethodDecorator;
/**
 * Makes a route (or every route of a controller) idempotent: each (scope, key) runs the handler once,
 * and every repeat gets the first answer. Options override the `forRoot()` defaults for this route.
 *
 * @example
 * \@Post('orders') \@Idempotent()                          // key from the Idempotency-Key header
 * \@Post('webhooks/stripe') \@Idempotent({ key: 'stripe' }) // Stripe's event id
 * \@Post('x') \@Idempotent({ key: (req: Request) => req.body.eventId, onInFlight: 'wait' })
 */
export function Idempotent<TRequest = IdempotencyRequest>(options?: IdempotentOptions<TRequest>): ClassDecorator & MethodDecorator;
export function Idempotent(options: IdempotentOptions | IdempotentMessageOptions = {}): ClassDecorator & MethodDecorator {
  // The rest (durations, and what depends on the module's defaults) is checked at start, with the route named.
  const where = '@Idempotent()';
  if (options.key !== undefined) {
    // Which kind of handler it decorates is known at start, where a message source on an HTTP route fails.
    if (isMessageKeySource(options.key)) assertMessageKeySource(options.key, where);
    else assertKeySource(options.key as KeySource<never>, where);
  }
  return SetMetadata(IDEMPOTENT_OPTIONS, options);
}
