/**
 * What a request gives the store at least, however little of its `waitTimeout` is left: a call near the end of
 * the wait still gets an answer, and a small `waitTimeout` does not turn a slow store into a failing one.
 */
export const SHORTEST_STORE_WAIT_MS = 1_000;

/** The store did not answer within the time the request may wait for it. */
export class StoreTimeoutError extends Error {
  override readonly name = 'StoreTimeoutError';
}

/** What becomes of work that settles after its caller stopped waiting. */
export interface LateHandlers<T> {
  result?(result: T): void;
  error?(error: unknown): void;
}

/**
 * `work`, or a `StoreTimeoutError` (its message made only then) once `ms` have passed. Work that settles later goes
 * to `late`; without a handler its error is dropped, since the request was already answered for it.
 */
export function settleWithin<T>(work: Promise<T>, ms: number, message: () => string, late: LateHandlers<T> = {}): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      reject(new StoreTimeoutError(message()));
    }, ms);
    timer.unref();
    work.then(
      (result) => {
        if (timedOut) return late.result?.(result);
        clearTimeout(timer);
        resolve(result);
      },
      (error: unknown) => {
        if (timedOut) return late.error?.(error);
        clearTimeout(timer);
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}
