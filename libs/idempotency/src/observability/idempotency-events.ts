import { createHash } from 'node:crypto';

/**
 * The `node:diagnostics_channel` on which every outcome of the library is published, one message per
 * outcome ({@link IdempotencyOutcomeMessage}). One channel for all outcomes: a subscriber sees them all
 * in the order they happened and picks by `message.outcome`.
 *
 * @example
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe(IDEMPOTENCY_OUTCOME_CHANNEL, (message) => {
 *   const { outcome, route, addedMs } = message as IdempotencyOutcomeMessage;
 * });
 */
export const IDEMPOTENCY_OUTCOME_CHANNEL = 'nestjs-idempotency:outcome';

/**
 * Every outcome the library publishes. Each request that reaches the store ends with
 * exactly one of the answers (`claimed`, `replayed`, `rejected-in-flight`, `key-reused`, `released`,
 * `completion-fenced`, `stale-skipped`, `store-unavailable`); `waited` and `lease-taken-over` are
 * published before that answer, when they happen.
 *
 * @example
 * const counts = Object.fromEntries(IDEMPOTENCY_OUTCOMES.map((outcome) => [outcome, 0]));
 */
export const IDEMPOTENCY_OUTCOMES = [
  'claimed',
  'replayed',
  'rejected-in-flight',
  'waited',
  'key-reused',
  'released',
  'lease-taken-over',
  'completion-fenced',
  'stale-skipped',
  'store-unavailable',
] as const;

/**
 * - `claimed`: the request claimed the key, ran the handler and its answer is stored.
 * - `replayed`: the stored answer was sent again; the handler did not run.
 * - `rejected-in-flight`: a duplicate arrived while the first still ran (409), or waited past `waitTimeout`.
 * - `waited`: a duplicate waited for the first (`onInFlight: 'wait'`, transaction mode), then got an answer.
 * - `key-reused`: the key came with another request (fingerprint mismatch, 422).
 * - `released`: the handler ran but its answer is not kept (a failure, a status `storeIf` refuses): the
 *   key is given back, at once, or at the end of its lease when the handler may still take effect.
 * - `lease-taken-over`: a claim whose lease ran out was taken over by this attempt.
 * - `completion-fenced`: an attempt whose lease was taken over finished; its answer is not stored.
 * - `stale-skipped`: an ordered route skipped an event older than the newest applied.
 * - `store-unavailable`: the store could not be reached (503), or could not store an answer.
 *
 * @example
 * const alarming: IdempotencyOutcome[] = ['completion-fenced', 'store-unavailable'];
 */
export type IdempotencyOutcome = (typeof IDEMPOTENCY_OUTCOMES)[number];

/**
 * What is published for each outcome. It never holds the key, the body, or the tenant part of a scope.
 *
 * @example
 * { outcome: 'claimed', route: 'POST /orders', keyHash: '5d41402abc4b2a76', attempt: 1, status: 201, addedMs: 2.41 }
 */
export interface IdempotencyOutcomeMessage {
  readonly outcome: IdempotencyOutcome;
  /**
   * The scope without what a `scope` function added (after `#`): the route (`POST /orders`,
   * `stripe:POST /webhooks/stripe`), or the scope of `run()` (`fulfilment`, `job:fulfilment`).
   */
  readonly route: string;
  /** {@link idempotencyKeyHash} of the whole scope and the key: the same key gives the same hash. */
  readonly keyHash: string;
  /** Which attempt on the key held the claim (1, then 2 after a takeover...), where there is a claim. */
  readonly attempt?: number;
  /** The HTTP status the client gets (HTTP only; the stored one for `claimed` and `replayed`). */
  readonly status?: number;
  /**
   * On the answer that ends a request: the time the library added to it, in ms (the claim, waits
   * included, and storing the answer or giving the key back; not the handler's own time).
   */
  readonly addedMs?: number;
  /** How long a duplicate waited for the first request, in ms (`waited`, and a `rejected-in-flight` that waited). */
  readonly waitedMs?: number;
}

/**
 * A short hash of (scope, key) that identifies a record without revealing it: the first 16 hex digits
 * of sha-256 over the scope, a NUL and the key. Anyone who knows the scope and the key can compute it
 * (to find a record's messages and log lines); neither can be read from it. A key easy to guess (a
 * small counter) can be found by hashing the guesses: use random keys where that matters.
 *
 * @example
 * idempotencyKeyHash('POST /orders', 'order-1'); // the keyHash of that request's messages and log lines
 */
export function idempotencyKeyHash(scope: string, key: string): string {
  return createHash('sha256').update(scope).update('\u0000').update(key).digest('hex').slice(0, 16);
}

/** The part of a scope that names the route or the work; what a `scope` function added (a tenant) is left out. */
export function scopeLabel(scope: string): string {
  const tenant = scope.indexOf('#');
  return tenant === -1 ? scope : scope.slice(0, tenant);
}
