import { createParamDecorator } from '@nestjs/common';
import { carryClaimContext, type ClaimIdentity, currentClaim } from './claim/claim-context';

/**
 * Injects the claim the handler runs under: `{ scope, key, attempt, derive(name) }`, where `derive(name)` is
 * the key to send with one downstream call, the same on every re-run of this claim. `undefined` when the
 * request holds no claim (its key is optional and absent, or the handler is not idempotent). Read from the
 * running claim, so it works in HTTP, message and GraphQL handlers alike.
 *
 * @example
 * \@Post('orders') \@Idempotent()
 * async place(@Body() order: PlaceOrder, @IdempotencyKey() claim: ClaimIdentity) {
 *   await fetch(providerUrl, { method: 'POST', headers: { 'Idempotency-Key': claim.derive('charge') }, body });
 * }
 */
export const IdempotencyKey = (): ParameterDecorator => {
  // Applied as the class is defined, before any claim: the app reads claims, so the library carries them.
  carryClaimContext();
  return claimParameter();
};

const claimParameter = createParamDecorator((): ClaimIdentity | undefined => currentClaim());
