import { HttpException, Logger } from '@nestjs/common';
import { IdempotencyKeyUnavailableException } from '../errors/idempotency.errors';

/** A value, or a promise of it: what a key, scope or fingerprint function may return. */
export type Awaitable<T> = T | PromiseLike<T>;

/** The route a request function runs for, and how long it is waited for. */
export interface RequestFunctionBound {
  /** `POST /orders`: named in the warning when a function fails. */
  route: string;
  /** `Date.now()` past which a pending function is no longer waited for: the request's start plus the route's `waitTimeout`. */
  deadline: number;
}

/** For callers without a route (unit tests, non-HTTP use): never times out. */
export const UNBOUNDED: RequestFunctionBound = { route: '(no route)', deadline: Number.POSITIVE_INFINITY };

const logger = new Logger('Idempotency');

/**
 * Calls one of the app's functions of the request (key, scope, fingerprint). A plain value comes back as
 * it is, without a microtask; a promise is awaited until the bound's deadline, then answered with a
 * 503 `IDEMPOTENCY_KEY_UNAVAILABLE`. An `HttpException` the function throws is the answer as it is; any
 * other failure is the same retryable 503, and a warning naming the route.
 */
export function callRequestFunction<TRequest, T>(
  fn: (request: TRequest) => Awaitable<T>,
  request: TRequest,
  what: string,
  bound: RequestFunctionBound,
): Awaitable<T> {
  let result: Awaitable<T>;
  try {
    result = fn(request);
  } catch (error) {
    throw unreadable(error, what, bound);
  }
  return isPromiseLike(result) ? settleBy(result, what, bound) : result;
}

export function isPromiseLike<T>(value: Awaitable<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null | undefined)?.then === 'function';
}

async function settleBy<T>(pending: PromiseLike<T>, what: string, bound: RequestFunctionBound): Promise<T> {
  const settled = Promise.resolve(pending).catch((error: unknown) => {
    throw unreadable(error, what, bound);
  });
  if (bound.deadline === Number.POSITIVE_INFINITY) return settled;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(
      () => {
        logger.warn(`${bound.route}: the ${what} function was still pending when the route's waitTimeout ran out; answered 503.`);
        reject(new IdempotencyKeyUnavailableException());
      },
      Math.max(0, bound.deadline - Date.now()),
    );
  });
  try {
    return await Promise.race([settled, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A function that failed most often failed on something it reads (a tenant lookup, a cache): the client's
 * retry may succeed, so it gets the retryable 503, not a 400 that a client would take as final.
 */
function unreadable(error: unknown, what: string, bound: RequestFunctionBound): Error {
  if (error instanceof HttpException) return error;
  const message = error instanceof Error ? error.message : String(error);
  logger.warn(`${bound.route}: the ${what} function failed, answered 503: ${message}`);
  return new IdempotencyKeyUnavailableException();
}
