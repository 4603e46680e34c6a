import { toMilliseconds, toTimerMilliseconds } from '../duration';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { DEFAULT_REPLAY_HEADERS } from '../http/replay';
import { IDEMPOTENCY_DEFAULTS, type IdempotencyModuleOptions, type IdempotentOptions } from '../idempotency.options';
import { assertKeySource, presetOf } from '../keys/key-source';
import { PROVIDER_PRESETS, storeSuccessOnly } from '../keys/provider-presets';
import { withoutUndefined } from './module-defaults';
import { assertInFlightPolicy, assertLease, assertPositiveWhole } from './option-rules';
import type { RoutePlan } from './route-plan';

/**
 * Merges a route's options over the module's and checks the result; pure, run once per route at start.
 * Throws an {@link IdempotencyConfigurationError} that names the route (`name`, `Controller.method`) and the fix.
 *
 * @example
 * resolveRoutePlan({ lease: '60s' }, { key: 'stripe', transaction: true }, 'WebhooksController.stripe')
 */
export function resolveRoutePlan(defaults: IdempotencyModuleOptions, route: IdempotentOptions<never>, name: string): RoutePlan {
  const where = `@Idempotent() on ${name}`;
  const own = route as IdempotentOptions;
  const merged = { ...IDEMPOTENCY_DEFAULTS, ...withoutUndefined(defaults), ...withoutUndefined(own) };
  assertKeySource(merged.key, where);
  const preset = presetOf(merged.key);
  const moduleTtlMs = toMilliseconds(merged.ttl, `${where}: ttl`);
  // A preset's ttl covers the provider's retry window, unless the route chose its own.
  const ttlMs = own.ttl !== undefined || !preset ? moduleTtlMs : Math.max(moduleTtlMs, toMilliseconds(PROVIDER_PRESETS[preset].ttl, `${where}: ttl`));
  const leaseMs = toTimerMilliseconds(merged.lease, `${where}: lease`);
  const maxLeaseMs = toTimerMilliseconds(merged.maxLease, `${where}: maxLease`);
  assertLease(leaseMs, maxLeaseMs, where);
  const waitTimeoutMs = toTimerMilliseconds(merged.waitTimeout, `${where}: waitTimeout`);
  assertInFlightPolicy(merged.onInFlight, where);
  if (merged.order && (typeof merged.order.resource !== 'function' || typeof merged.order.version !== 'function')) {
    throw new IdempotencyConfigurationError(`${where}: order needs two functions of the request, resource and version.`);
  }
  if (merged.order && !merged.transaction) {
    throw new IdempotencyConfigurationError(
      `${where}: order needs transaction: true, so that the version check, the handler's writes and the new version ` +
        'commit together, one event per resource at a time.',
    );
  }
  assertPositiveWhole(merged.maxResponseBytes, `${where}: maxResponseBytes`, 'bytes');
  assertFunctions(merged, where);
  return {
    name,
    key: merged.key,
    scope: merged.scope,
    required: merged.required,
    // A provider's redelivery may differ in its attempt counters; its event id is its identity.
    fingerprint: own.fingerprint ?? (preset ? false : merged.fingerprint),
    ttlMs,
    leaseMs,
    maxLeaseMs,
    onInFlight: merged.onInFlight,
    waitTimeoutMs,
    transaction: merged.transaction,
    // A provider retries anything but a 2xx, so only a 2xx is final.
    storeIf: own.storeIf ?? (preset ? storeSuccessOnly : merged.storeIf),
    replayHeaders: new Set([...DEFAULT_REPLAY_HEADERS, ...(merged.replayHeaders ?? []).map((header) => header.toLowerCase())]),
    maxResponseBytes: merged.maxResponseBytes,
    order: merged.order,
  };
}

/** Options that are functions of the request: a value of another type would fail every request instead of the start. */
function assertFunctions(options: Pick<IdempotentOptions, 'scope' | 'fingerprint' | 'storeIf' | 'required' | 'transaction'>, where: string): void {
  const wrong = (option: string, expected: string) => new IdempotencyConfigurationError(`${where}: ${option} must be ${expected}.`);
  if (options.scope !== undefined && typeof options.scope !== 'function') throw wrong('scope', 'a function of the request, (req) => req.user.id');
  if (typeof options.fingerprint !== 'boolean' && typeof options.fingerprint !== 'function') {
    throw wrong('fingerprint', 'true, false or a function of the request');
  }
  if (typeof options.storeIf !== 'function') throw wrong('storeIf', 'a function of the status, (status) => status < 500');
  if (typeof options.required !== 'boolean') throw wrong('required', 'true or false');
  if (typeof options.transaction !== 'boolean') throw wrong('transaction', 'true or false');
}
