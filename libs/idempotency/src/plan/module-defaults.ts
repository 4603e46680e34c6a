import { toMilliseconds, toTimerMilliseconds } from '../duration';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IDEMPOTENCY_DEFAULTS, type IdempotencyModuleOptions } from '../idempotency.options';
import { assertKeySource } from '../keys/key-source';
import type { ReplayCacheOptions } from '../claim/replay-cache';
import { resolveOutboxOptions } from '../outbox/outbox.options';
import { assertInFlightPolicy, assertLease, assertPositiveWhole, ConfigurationProblems } from './option-rules';

/** The module's options that every route and `run()` fall back on, in milliseconds, checked. */
export interface ModuleDefaults {
  ttlMs: number;
  leaseMs: number;
  maxLeaseMs: number;
  waitTimeoutMs: number;
  /** `0`: no purge timer. */
  purgeIntervalMs: number;
  purgeBatchSize: number;
  maxResponseBytes: number;
  /** `undefined`: the replay cache is off. */
  replayCache?: ReplayCacheOptions;
}

const WHERE = 'IdempotencyModule.forRoot()';

/**
 * Checks every option given to `forRoot()` (or returned by `forRootAsync()`'s factory), also those no
 * route uses, and throws one error that names each wrong one.
 */
export function resolveModuleDefaults(options: IdempotencyModuleOptions): ModuleDefaults {
  const problems = new ConfigurationProblems();
  const merged = { ...IDEMPOTENCY_DEFAULTS, ...withoutUndefined(options) };
  const ttlMs = problems.check(() => toMilliseconds(merged.ttl, `${WHERE}: ttl`));
  const leaseMs = problems.check(() => toTimerMilliseconds(merged.lease, `${WHERE}: lease`));
  const maxLeaseMs = problems.check(() => toTimerMilliseconds(merged.maxLease, `${WHERE}: maxLease`));
  if (leaseMs !== undefined && maxLeaseMs !== undefined) problems.check(() => assertLease(leaseMs, maxLeaseMs, WHERE));
  const waitTimeoutMs = problems.check(() => toTimerMilliseconds(merged.waitTimeout, `${WHERE}: waitTimeout`));
  const purgeIntervalMs = problems.check(() => toTimerMilliseconds(merged.purgeInterval, `${WHERE}: purgeInterval`, { zeroMeansOff: true }));
  problems.check(() => assertPositiveWhole(merged.purgeBatchSize, `${WHERE}: purgeBatchSize`, 'rows'));
  problems.check(() => assertPositiveWhole(merged.maxResponseBytes, `${WHERE}: maxResponseBytes`, 'bytes'));
  problems.check(() => assertInFlightPolicy(merged.onInFlight, `${WHERE}`));
  const claimContext = options.claimContext;
  if (claimContext !== undefined && claimContext !== 'auto' && claimContext !== 'always') {
    problems.check(() => {
      throw new IdempotencyConfigurationError(`${WHERE}: claimContext must be 'auto' or 'always'; got ${JSON.stringify(claimContext)}.`);
    });
  }
  const key = options.key;
  if (key !== undefined) problems.check(() => assertKeySource(key, WHERE));
  let replayCache: ReplayCacheOptions | undefined;
  if (options.replayCache !== false) {
    const { maxAge = '1m', maxBytes = 8 * 1024 * 1024 } = options.replayCache ?? {};
    const maxAgeMs = problems.check(() => toMilliseconds(maxAge, `${WHERE}: replayCache.maxAge`));
    problems.check(() => assertPositiveWhole(maxBytes, `${WHERE}: replayCache.maxBytes`, 'bytes'));
    replayCache = { maxAgeMs: maxAgeMs as number, maxBytes };
  }
  const outbox = options.outbox;
  if (outbox) problems.check(() => resolveOutboxOptions(outbox));
  problems.throwIfAny();
  return {
    ttlMs: ttlMs as number,
    leaseMs: leaseMs as number,
    maxLeaseMs: maxLeaseMs as number,
    waitTimeoutMs: waitTimeoutMs as number,
    purgeIntervalMs: purgeIntervalMs as number,
    purgeBatchSize: merged.purgeBatchSize,
    maxResponseBytes: merged.maxResponseBytes,
    replayCache,
  };
}

/** Options merged over defaults: an option given as `undefined` keeps its default. */
export function withoutUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>;
}
