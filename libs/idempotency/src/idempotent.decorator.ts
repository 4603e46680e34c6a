import { SetMetadata } from '@nestjs/common';
import { IDEMPOTENT_OPTIONS } from './idempotency.constants';
import type { IdempotentOptions } from './idempotency.options';
import type { IdempotencyRequest } from './idempotency-request';
import { assertKeySource } from './keys/key-source';
import { isMessageKeySource } from './messages/message-keys';
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
  // A message key source is checked at start, once it is known to decorate a message handler.
  if (options.key !== undefined && !isMessageKeySource(options.key)) assertKeySource(options.key, where);
  return SetMetadata(IDEMPOTENT_OPTIONS, options);
}
