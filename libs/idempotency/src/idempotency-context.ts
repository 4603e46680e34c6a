import { Injectable } from '@nestjs/common';
import { type ClaimIdentity, currentClaim } from './claim/claim-context';
import { IdempotencyConfigurationError } from './errors/configuration.errors';

/**
 * The claim of the handler that is running, wherever the code runs in it (a service it calls, a
 * function three awaits down): in an `@Idempotent()` route or message handler, and in `run()`/`runJob()`.
 * Injectable, and usable without injection through its static methods.
 *
 * @example
 * \@Injectable()
 * class Payments {
 *   constructor(private readonly idempotency: IdempotencyContext) {}
 *   charge(amount: number) {
 *     return stripe.paymentIntents.create({ amount, currency: 'eur' }, { idempotencyKey: this.idempotency.derive('charge') });
 *   }
 * }
 */
@Injectable()
export class IdempotencyContext {
  /** The claim held here, or `undefined` (no claim: the route has no `@Idempotent()`, or its key is optional and absent). */
  static current(): ClaimIdentity | undefined {
    return currentClaim();
  }

  /**
   * The downstream key named `name` of the claim held here (see `ClaimIdentity.derive`). Throws
   * `IdempotencyConfigurationError` where no claim is held: sending no key, or a random one, would lose
   * exactly what the derived key is for, so the caller decides that case with `current()`.
   */
  static derive(name: string): string {
    const claim = currentClaim();
    if (!claim) {
      throw new IdempotencyConfigurationError(
        `derive('${name}') was called where no idempotency claim is held. Call it from a handler of an @Idempotent() ` +
          'route or message, or from the function given to run()/runJob(); where the key is optional, check IdempotencyContext.current() first.',
      );
    }
    return claim.derive(name);
  }

  current(): ClaimIdentity | undefined {
    return IdempotencyContext.current();
  }

  derive(name: string): string {
    return IdempotencyContext.derive(name);
  }
}
