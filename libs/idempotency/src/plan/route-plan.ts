import type { EventOrder, FingerprintFunction, InFlightPolicy, ScopeFunction } from '../route-functions';
import type { KeySource } from '../keys/key-source';

/**
 * What an idempotent route does, resolved once at start from the module's defaults and the route's
 * `@Idempotent()` options: durations in milliseconds, every value checked. The request path only reads it.
 */
export interface RoutePlan {
  /** `Controller.method`: how errors and logs name the route. */
  name: string;
  key: KeySource;
  scope?: ScopeFunction;
  required: boolean;
  fingerprint: boolean | FingerprintFunction;
  ttlMs: number;
  leaseMs: number;
  maxLeaseMs: number;
  onInFlight: InFlightPolicy;
  waitTimeoutMs: number;
  transaction: boolean;
  storeIf: (status: number) => boolean;
  /** Lower-case names, the defaults included. */
  replayHeaders: ReadonlySet<string>;
  maxResponseBytes: number;
  order?: EventOrder;
}
