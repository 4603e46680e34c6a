import { toMilliseconds, toTimerMilliseconds } from '../duration';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IDEMPOTENCY_DEFAULTS, type IdempotencyModuleOptions } from '../idempotency.options';
import type { InFlightPolicy } from '../route-functions';
import { withoutUndefined } from '../plan/module-defaults';
import { assertInFlightPolicy, assertLease, assertPositiveWhole } from '../plan/option-rules';
import { assertMessageKeySource } from './message-keys';
import type { IdempotentMessageOptions, MessageKeySource } from './message-options';

/** Whether a handler answers (`@MessagePattern()`, request/reply) or only consumes (`@EventPattern()`). */
export type MessageKind = 'request' | 'event';

/** What an idempotent message handler does, resolved and checked once at start. */
export interface MessagePlan {
  /** `Controller.method`: how errors and logs name the handler. */
  name: string;
  kind: MessageKind;
  /** The patterns of the handler, as Nest matches them: the scope when the context does not say which one came. */
  patterns: readonly string[];
  key: MessageKeySource;
  scope?: (data: unknown, context: unknown) => unknown;
  required: boolean;
  fingerprint: boolean | ((data: unknown, context: unknown) => unknown);
  ttlMs: number;
  leaseMs: number;
  maxLeaseMs: number;
  onInFlight: InFlightPolicy;
  waitTimeoutMs: number;
  transaction: boolean;
  maxResponseBytes: number;
  ack: boolean;
  redeliveryDelayMs: number;
}

/** Options of `@Idempotent()` that only mean something over HTTP. */
const HTTP_ONLY = ['storeIf', 'replayHeaders', 'order'] as const;

/**
 * Merges a message handler's options over the module's and checks them; pure, run once per handler at start.
 * Throws an {@link IdempotencyConfigurationError} that names the handler and the fix.
 */
export function resolveMessagePlan(
  defaults: IdempotencyModuleOptions,
  own: IdempotentMessageOptions & Record<string, unknown>,
  target: { name: string; kind: MessageKind; patterns: readonly string[] },
): MessagePlan {
  const where = `@Idempotent() on ${target.name}`;
  for (const option of HTTP_ONLY) {
    if (own[option] !== undefined) {
      throw new IdempotencyConfigurationError(`${where}: ${option} applies to HTTP routes only; remove it from this message handler.`);
    }
  }
  // The module's key default names an HTTP source (a header, a preset): a message has its own default.
  const { key: _httpKey, ...moduleDefaults } = withoutUndefined(defaults);
  const merged = { ...IDEMPOTENCY_DEFAULTS, ...moduleDefaults, ack: false, redeliveryDelay: '1s', ...withoutUndefined(own) };
  const key = own.key ?? 'message-id';
  assertMessageKeySource(key, where);
  const leaseMs = toTimerMilliseconds(merged.lease, `${where}: lease`);
  const maxLeaseMs = toTimerMilliseconds(merged.maxLease, `${where}: maxLease`);
  assertLease(leaseMs, maxLeaseMs, where);
  assertInFlightPolicy(merged.onInFlight, where);
  assertPositiveWhole(merged.maxResponseBytes, `${where}: maxResponseBytes`, 'bytes');
  const wrong = (option: string, expected: string) => new IdempotencyConfigurationError(`${where}: ${option} must be ${expected}.`);
  if (merged.scope !== undefined && typeof merged.scope !== 'function') throw wrong('scope', 'a function of the payload and context');
  if (typeof merged.fingerprint !== 'boolean' && typeof merged.fingerprint !== 'function') throw wrong('fingerprint', 'true, false or a function');
  for (const option of ['required', 'transaction', 'ack'] as const) {
    if (typeof merged[option] !== 'boolean') throw wrong(option, 'true or false');
  }
  return {
    ...target,
    key,
    scope: merged.scope as MessagePlan['scope'],
    required: merged.required,
    fingerprint: merged.fingerprint as MessagePlan['fingerprint'],
    ttlMs: toMilliseconds(merged.ttl, `${where}: ttl`),
    leaseMs,
    maxLeaseMs,
    onInFlight: merged.onInFlight,
    waitTimeoutMs: toTimerMilliseconds(merged.waitTimeout, `${where}: waitTimeout`),
    transaction: merged.transaction,
    maxResponseBytes: merged.maxResponseBytes,
    ack: merged.ack,
    redeliveryDelayMs: toTimerMilliseconds(merged.redeliveryDelay, `${where}: redeliveryDelay`),
  };
}
