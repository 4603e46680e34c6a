import { toMilliseconds, toTimerMilliseconds } from '../duration';
import type { InFlightPolicy } from '../route-functions';
import type { IdempotentOptions } from '../idempotency.options';
import type { ModuleDefaults } from './module-defaults';
import { assertInFlightPolicy, assertLease } from './option-rules';

/** Options of {@link IdempotencyService.run}; unset ones come from `forRoot()`. */
export interface RunOptions extends Pick<IdempotentOptions, 'ttl' | 'lease' | 'maxLease' | 'waitTimeout' | 'transaction'> {
  /** Namespace of the key, e.g. the queue or job name. Default `'run'`. */
  scope?: string;
  /** Identifies the work (a hash of the job's payload, say): a repeat with another one is refused. */
  fingerprint?: string;
  /** Default `'wait'`: a concurrent caller waits for the first result. */
  onInFlight?: InFlightPolicy;
}

/** What one `run()` call does: its own options over the module's, checked. */
export interface RunPlan {
  ttlMs: number;
  leaseMs: number;
  maxLeaseMs: number;
  waitTimeoutMs: number;
  onInFlight: InFlightPolicy;
  transaction: boolean;
}

const WHERE = 'run()';

/**
 * Resolves a call's options over the module's defaults, which were checked at start: only what the call
 * sets is read and checked, with the same rules as a route's. Throws an `IdempotencyConfigurationError`.
 */
export function resolveRunPlan(defaults: ModuleDefaults, options: RunOptions): RunPlan {
  const { ttl, lease, maxLease, waitTimeout, onInFlight = 'wait' } = options;
  const leaseMs = lease === undefined ? defaults.leaseMs : toTimerMilliseconds(lease, `${WHERE}: lease`);
  const maxLeaseMs = maxLease === undefined ? defaults.maxLeaseMs : toTimerMilliseconds(maxLease, `${WHERE}: maxLease`);
  if (lease !== undefined || maxLease !== undefined) assertLease(leaseMs, maxLeaseMs, WHERE);
  if (options.onInFlight !== undefined) assertInFlightPolicy(onInFlight, WHERE);
  return {
    ttlMs: ttl === undefined ? defaults.ttlMs : toMilliseconds(ttl, `${WHERE}: ttl`),
    leaseMs,
    maxLeaseMs,
    waitTimeoutMs: waitTimeout === undefined ? defaults.waitTimeoutMs : toTimerMilliseconds(waitTimeout, `${WHERE}: waitTimeout`),
    onInFlight,
    transaction: options.transaction ?? false,
  };
}
