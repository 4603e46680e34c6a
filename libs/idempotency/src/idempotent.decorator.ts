import { SetMetadata } from '@nestjs/common';
import { IDEMPOTENT_OPTIONS } from './idempotency.constants';
import type { IdempotentOptions } from './idempotency.options';
import type { IdempotencyRequest } from './idempotency-request';
import { assertKeySource } from './keys/key-source';

/**
 * Makes a route (or every route of a controller) idempotent: each (scope, key) runs the handler once,
 * and every repeat gets the first answer. Options override the `forRoot()` defaults for this route.
 *
 * @example
 * \@Post('orders') \@Idempotent()                          // key from the Idempotency-Key header
 * \@Post('webhooks/stripe') \@Idempotent({ key: 'stripe' }) // Stripe's event id
 * \@Post('x') \@Idempotent({ key: (req: Request) => req.body.eventId, onInFlight: 'wait' })
 */
export function Idempotent<TRequest = IdempotencyRequest>(options: IdempotentOptions<TRequest> = {}): ClassDecorator & MethodDecorator {
  // The rest (durations, and what depends on the module's defaults) is checked at start, with the route named.
  const where = '@Idempotent()';
  if (options.key !== undefined) assertKeySource(options.key, where);
  return SetMetadata(IDEMPOTENT_OPTIONS, options);
}
