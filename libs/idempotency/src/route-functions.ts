import type { IdempotencyRequest } from './idempotency-request';

/** What a duplicate gets while the first request with its key is still running. */
export type InFlightPolicy = 'reject' | 'wait';

/** Adds a tenant or principal to the route's scope, or a promise of it; `undefined` adds nothing. */
export type ScopeFunction<TRequest = IdempotencyRequest> = (
  request: TRequest,
) => string | number | undefined | null | PromiseLike<string | number | undefined | null>;

/** Replaces the default fingerprint (method, route path and canonical body); may return a promise. */
export type FingerprintFunction<TRequest = IdempotencyRequest> = (request: TRequest) => string | PromiseLike<string>;

/** A version of a resource: a number, a bigint, a `Date`, or a string holding a number or an ISO-8601 time. */
export type EventVersion = number | bigint | string | Date;

/**
 * Which resource an event changes, and how new the state it carries is. `undefined` from either
 * function leaves the event unordered (it runs like any other).
 */
export interface EventOrder<TRequest = IdempotencyRequest> {
  resource: (request: TRequest) => string | number | undefined | null;
  version: (request: TRequest) => EventVersion | undefined | null;
}
