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
  /** The record's scope, as stored (HTTP: `[provider:]METHOD /route[#tenant]`; a message: `message:<pattern>[#tenant]`; `run()`: its `scope`). */
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
 * Whether the library's own claims run in the AsyncLocalStorage above. Off until the app reads the claim
 * (`ClaimContextSwitch`): on Node 20 a storage that has run once keeps a promise hook on for the whole process,
 * which costs every request of the app, idempotent or not, several percent of its CPU.
 */
let carried = false;

/** Has the library's claims carried from now on (the app reads them, or `claimContext: 'always'`). */
export function carryClaimContext(): void {
  carried = true;
}

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

/**
 * Runs `fn` under `claim` where the app reads claims (see `carried`), else just runs it: the library's own
 * contexts (HTTP, GraphQL, messages, `run()`) go through here.
 */
export function runWithClaim<T>(claim: ClaimRef, fn: () => T): T {
  return carried ? runInClaimContext(claim, fn) : fn();
}

/**
 * The claim the running code holds, or `undefined` when it holds none. Where the library does not carry claims
 * (nothing in the app reads them at start), a read outside `runInClaimContext()` throws: it would otherwise say
 * "no claim" inside a claimed handler.
 */
export function currentClaim(): ClaimIdentity | undefined {
  const claim = current.getStore();
  if (!claim && !carried) {
    throw new IdempotencyConfigurationError(
      "The idempotency claim was read, but this app does not carry it: IdempotencyModule turns it on where the app injects IdempotencyContext or uses @IdempotencyKey(). Where only IdempotencyContext's static methods read it, set claimContext: 'always' in IdempotencyModule.forRoot().",
    );
  }
  return claim;
}

function describe(value: unknown): string {
  return typeof value === 'string' ? 'an empty string' : typeof value;
}
