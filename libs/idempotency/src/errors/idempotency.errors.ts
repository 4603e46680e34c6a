import { HttpException, HttpStatus } from '@nestjs/common';

/** The `code` of every client-facing answer of the library. */
export type IdempotencyErrorCode =
  | 'IDEMPOTENCY_KEY_MISSING'
  | 'IDEMPOTENCY_KEY_INVALID'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'IDEMPOTENCY_KEY_IN_USE'
  | 'IDEMPOTENCY_STORE_UNAVAILABLE'
  | 'IDEMPOTENCY_TRANSACTION_ABORTED'
  | 'IDEMPOTENCY_KEY_UNAVAILABLE'
  | 'EVENT_VERSION_INVALID'
  | 'WEBHOOK_SIGNATURE_INVALID';

/** The `application/problem+json` body (RFC 9457) of every client-facing answer. */
export interface IdempotencyProblem {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: IdempotencyErrorCode;
}

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/**
 * Base of the library's client-facing errors: an `HttpException` whose response is a problem document
 * and which carries the headers (`Content-Type`, `Retry-After`) that must go out with it.
 *
 * @example
 * \@Catch(IdempotencyException)
 * class IdempotencyMetricsFilter extends BaseExceptionFilter {
 *   catch(error: IdempotencyException, host: ArgumentsHost) {
 *     metrics.increment(error.code);
 *     super.catch(error, host);
 *   }
 * }
 */
export abstract class IdempotencyException extends HttpException {
  readonly code: IdempotencyErrorCode;
  readonly headers: Readonly<Record<string, string>>;

  protected constructor(code: IdempotencyErrorCode, status: HttpStatus, title: string, detail: string, retryAfterSeconds?: number) {
    const problem: IdempotencyProblem = {
      type: `urn:nestjs-idempotency:${code.toLowerCase().replaceAll('_', '-')}`,
      title,
      status,
      detail,
      code,
    };
    super(problem, status);
    this.code = code;
    this.headers =
      retryAfterSeconds === undefined
        ? { 'content-type': PROBLEM_CONTENT_TYPE }
        : { 'content-type': PROBLEM_CONTENT_TYPE, 'retry-after': String(retryAfterSeconds) };
  }
}

/** 400: the route needs a key and the request carries none. */
export class IdempotencyKeyMissingException extends IdempotencyException {
  constructor(detail = 'This request needs an Idempotency-Key.') {
    super('IDEMPOTENCY_KEY_MISSING', HttpStatus.BAD_REQUEST, 'Idempotency key missing', detail);
  }
}

/**
 * 400: the key is empty, longer than 255 characters, holds control characters or lone surrogates, came on
 * more than one header line, or could not be read; or the scope holds control characters or lone surrogates.
 */
export class IdempotencyKeyInvalidException extends IdempotencyException {
  constructor(detail: string) {
    super('IDEMPOTENCY_KEY_INVALID', HttpStatus.BAD_REQUEST, 'Idempotency key invalid', detail);
  }
}

/** 422: the key was first used with a different request. */
export class IdempotencyKeyReusedException extends IdempotencyException {
  constructor() {
    super(
      'IDEMPOTENCY_KEY_REUSED',
      HttpStatus.UNPROCESSABLE_ENTITY,
      'Idempotency key reused',
      'This key was already used with a different request. Use a new key for a new request.',
    );
  }
}

/** 409 with `Retry-After`: the first request with this key is still being processed. */
export class IdempotencyKeyInUseException extends IdempotencyException {
  constructor(retryAfterSeconds: number) {
    super(
      'IDEMPOTENCY_KEY_IN_USE',
      HttpStatus.CONFLICT,
      'Idempotency key in use',
      'A request with this key is still being processed. Retry after the time in Retry-After.',
      retryAfterSeconds,
    );
  }
}

/** 503 with `Retry-After`: the idempotency store cannot be reached, so the handler did not run. */
export class IdempotencyStoreUnavailableException extends IdempotencyException {
  constructor(retryAfterSeconds = 1) {
    super(
      'IDEMPOTENCY_STORE_UNAVAILABLE',
      HttpStatus.SERVICE_UNAVAILABLE,
      'Idempotency store unavailable',
      'The request was not processed because its idempotency record could not be read or written. Retry later.',
      retryAfterSeconds,
    );
  }
}

/**
 * 503 with `Retry-After`: the route's own key, scope or fingerprint function was still pending when the
 * route's `waitTimeout` ran out, so the request was not processed.
 */
export class IdempotencyKeyUnavailableException extends IdempotencyException {
  constructor(retryAfterSeconds = 1) {
    super(
      'IDEMPOTENCY_KEY_UNAVAILABLE',
      HttpStatus.SERVICE_UNAVAILABLE,
      'Idempotency key unavailable',
      'The request was not processed because its idempotency key could not be read in time. Retry later.',
      retryAfterSeconds,
    );
  }
}

/** 400: an ordered route read a version it cannot compare (not a number, bigint, Date or ISO-8601 time). */
export class EventVersionInvalidException extends IdempotencyException {
  constructor(detail: string) {
    super('EVENT_VERSION_INVALID', HttpStatus.BAD_REQUEST, 'Event version invalid', detail);
  }
}

/**
 * 400: a webhook delivery whose signature is missing, wrong, or signed outside the timestamp tolerance.
 * It is refused before the claim, so it leaves no record and cannot block the real event.
 */
export class WebhookSignatureInvalidException extends IdempotencyException {
  constructor(detail: string) {
    super('WEBHOOK_SIGNATURE_INVALID', HttpStatus.BAD_REQUEST, 'Webhook signature invalid', detail);
  }
}

/**
 * 500: in transaction mode, a statement of the handler failed and the handler caught it, then answered 2xx or
 * 3xx. Nothing it wrote was committed, so that answer cannot be true; the claim is released and a retry runs again.
 */
export class IdempotencyTransactionAbortedException extends IdempotencyException {
  constructor() {
    super(
      'IDEMPOTENCY_TRANSACTION_ABORTED',
      HttpStatus.INTERNAL_SERVER_ERROR,
      'Idempotent transaction aborted',
      'A statement of this request failed inside its transaction, so nothing it wrote was committed. Retry the request.',
    );
  }
}
