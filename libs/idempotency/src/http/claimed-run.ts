import { type CallHandler, Logger, StreamableFile } from '@nestjs/common';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { Observable, ReplaySubject, type Subscription } from 'rxjs';
import type { HeldClaim, ReleaseAnswer } from '../claim/held-claim';
import { UnstorableResponseError } from '../errors/configuration.errors';
import { type IdempotencyException } from '../errors/idempotency.errors';
import type { IdempotencyRequest } from '../idempotency-request';
import { routePath } from '../idempotency-request';
import type { RoutePlan } from '../plan/route-plan';
import type { OwnHeaders } from './own-headers';
import { holdResponse } from './response-capture';
import type { CapturedResponse, ReplacementResponse } from './response-message';

/** How long after a client left, and its handler ended, the framework may still write the response. */
const CLOSE_GRACE_MS = 1000;

/** Decides what becomes of a claim once its response is known, before any byte is sent. */
export type FinishHook = (
  claim: HeldClaim,
  captured: CapturedResponse,
  plan: RoutePlan,
  request: IdempotencyRequest,
  /** Set while the handler still runs (something else answered first): it settles when the handler ends. */
  stillRunning: Promise<void> | undefined,
) => Promise<ReplacementResponse | undefined>;

/**
 * Runs the handler of a claimed request: holds its response until `finish` has stored it (or given the key back),
 * and watches the handler to its end even when the framework stops listening first (the client left, an outer
 * timeout interceptor answered), so that the key is never freed while the handler may still take effect.
 */
export function runClaimed(
  claim: HeldClaim,
  plan: RoutePlan,
  request: IdempotencyRequest,
  response: ServerResponse,
  next: CallHandler,
  ownHeaders: OwnHeaders,
  finish: FinishHook,
): Observable<unknown> {
  let resolveSettled!: () => void;
  const settled = new Promise<void>((resolve) => (resolveSettled = resolve));
  let handlerDone = false;
  const handlerSettled = () => {
    handlerDone = true;
    resolveSettled();
  };
  let finished = false;
  const finishOnce = async (work: () => Promise<ReplacementResponse | undefined>) => {
    if (finished) return undefined;
    finished = true;
    return work();
  };

  holdResponse(
    response,
    plan.maxResponseBytes,
    {
      beforeSend: (captured) => finishOnce(() => finish(claim, captured, plan, request, handlerDone ? undefined : settled)),
      onClose: () => {
        // The client left before anything was sent. Give the handler, then the framework, time to produce the
        // response (it is stored as usual if it comes); past that, nothing will be sent.
        void settled
          .then(() => sleep(CLOSE_GRACE_MS))
          .then(() =>
            finishOnce(() => {
              logger.warn(`${routeOf(request)}: the client left and no response was written; the answer is not stored.`);
              claim.abandon();
              return Promise.resolve(undefined);
            }),
          );
      },
    },
    ownHeaders,
  );

  // The handler's answer, kept for whoever subscribes (Nest, once) and watched to its end here even when nobody
  // listens any more: a ReplaySubject fed by one subscription, rather than an rxjs pipeline per request.
  const result$ = new ReplaySubject<unknown>(1);
  let stream = false;
  let source: Subscription | undefined = undefined;
  source = next.handle().subscribe({
    next: (value: unknown) => {
      if (!isStream(value)) return result$.next(value);
      stream = true;
      source?.unsubscribe();
      handlerSettled();
      result$.error(
        new UnstorableResponseError(
          `${routeOf(request)} returned a stream, which an idempotent route cannot store and replay. ` +
            'Return the whole body (object, string or Buffer), or remove @Idempotent() from this route.',
        ),
      );
    },
    error: (error: unknown) => {
      handlerSettled();
      result$.error(error);
    },
    complete: () => {
      handlerSettled();
      result$.complete();
    },
  });
  // A stream returned synchronously came before `source` was set.
  if (stream) source.unsubscribe();
  return result$;
}

/**
 * The observable that `start()` resolves to, subscribed once it is there: what `defer()` and `mergeMap()` do,
 * in one observable per request. Nothing is subscribed if the subscriber left meanwhile.
 */
export function afterPromise<T>(start: () => Promise<Observable<T>>): Observable<T> {
  return new Observable<T>((subscriber) => {
    let inner: Subscription | undefined;
    start().then(
      (result$) => {
        if (!subscriber.closed) inner = result$.subscribe(subscriber);
      },
      (error: unknown) => subscriber.error(error),
    );
    return () => inner?.unsubscribe();
  });
}

const logger = new Logger('Idempotency');

/** Gives the key back; a release that fails is logged, as the lease (or the closed connection) frees the key anyway. */
export async function release(claim: HeldClaim, answer?: ReleaseAnswer): Promise<undefined> {
  try {
    await claim.release(answer);
  } catch (error) {
    logger.error(`Releasing an idempotency claim failed: ${(error as Error).message}`, (error as Error).stack);
  }
  return undefined;
}

/** `POST /orders/:id`: the route in a log line, never its URL (which may hold a key or a tenant). */
export function routeOf(request: IdempotencyRequest): string {
  return `${request.method.toUpperCase()} ${routePath(request) ?? '(unmatched route)'}`;
}

/** A library problem as the bytes that go out instead of the handler's answer. */
export function problemResponse(problem: IdempotencyException): ReplacementResponse {
  return { status: problem.getStatus(), headers: Object.entries(problem.headers), body: Buffer.from(JSON.stringify(problem.getResponse())) };
}

export function internalError(): ReplacementResponse {
  return {
    status: 500,
    headers: [['content-type', 'application/json; charset=utf-8']],
    body: Buffer.from(JSON.stringify({ statusCode: 500, message: 'Internal server error' })),
  };
}

function isStream(value: unknown): boolean {
  if (value instanceof StreamableFile || value instanceof Readable || value instanceof ReadableStream) return true;
  if (value instanceof Response) return value.body !== null;
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
