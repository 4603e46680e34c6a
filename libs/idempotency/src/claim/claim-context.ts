import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';

/**
 * The claim that the running handler holds: its record's identity, and the keys it sends downstream.
 *
 * @example
 * await stripe.paymentIntents.create(params, { idempotencyKey: claim.derive('charge') });
 */
export interface ClaimIdentity {
  /** The record's scope, as stored (for HTTP: `[provider:]METHOD /route[#tenant]`; for `run()`: its `scope`). */
  readonly scope: string;
  /** The idempotency key, as stored. */
  readonly key: string;
  /** Which attempt at this record runs: 1, then one more for each take-over of a lease that ran out. */
  readonly attempt: number;
  /**
   * The key for one downstream call named `name`: the same on every run of this (scope, key), whichever
   * attempt or instance runs it; different for another name, scope or key. 43 characters of base64url.
   */
  derive(name: string): string;
}

/** What a context (HTTP, a message, `run()`) knows of the claim it runs a handler under. */
export interface ClaimRef {
  scope: string;
  key: string;
  attempt: number;
}

/** Versions the formula: a new one would be a new label, never a change in what a stored claim derives. */
const DERIVE_LABEL = 'nestjs-idempotency/derive/v1';

const current = new AsyncLocalStorage<ClaimIdentity>();

/**
 * The downstream key of (scope, key, name): base64url, unpadded, of
 * `sha256(JSON.stringify(['nestjs-idempotency/derive/v1', scope, key, name]))`. Only these three strings
 * enter it (no attempt, owner token, clock or randomness), so every re-run derives the same key; the JSON
 * array keeps the parts apart (no two triples give the same text), and the hash keeps the tenant and the
 * key itself out of what the downstream sees.
 */
export function deriveKey(scope: string, key: string, name: string): string {
  if (typeof name !== 'string' || name.length === 0) {
    throw new IdempotencyConfigurationError(`derive() needs a non-empty name for the downstream call, such as derive('charge'); got ${describe(name)}.`);
  }
  return createHash('sha256')
    .update(JSON.stringify([DERIVE_LABEL, scope, key, name]))
    .digest('base64url');
}

/**
 * Runs `fn` with `claim` as the current claim: `fn` and everything it starts (awaits, timers, callbacks)
 * see it through `@IdempotencyKey()` and `IdempotencyContext`; nothing outside does. Nested runs (a
 * `run()` inside an idempotent route) see the innermost claim.
 *
 * @example
 * // In a test of a handler, or an integration of another transport:
 * runInClaimContext({ scope: 'orders', key: 'order-1', attempt: 1 }, () => controller.place(order));
 */
export function runInClaimContext<T>(claim: ClaimRef, fn: () => T): T {
  const { scope, key, attempt } = claim;
  const identity: ClaimIdentity = Object.freeze({ scope, key, attempt, derive: (name: string) => deriveKey(scope, key, name) });
  return current.run(identity, fn);
}

/** The claim the running code holds, or `undefined` when it holds none. */
export function currentClaim(): ClaimIdentity | undefined {
  return current.getStore();
}

function describe(value: unknown): string {
  return typeof value === 'string' ? 'an empty string' : typeof value;
}
