import { HttpException, IntrinsicException } from '@nestjs/common';
import type { IdempotencyErrorCode, IdempotencyException } from '../errors/idempotency.errors';

/** What GraphQL reports of an error: graphql-js copies a thrown error's `extensions` into the response's error. */
export interface GraphQLErrorExtensions {
  [name: string]: unknown;
}

/**
 * A client-facing answer of the library to one mutation field, as a GraphQL error: `extensions.code` is the
 * code of the same answer over HTTP (`IDEMPOTENCY_KEY_REUSED`...), `extensions.status` its HTTP status, and
 * `extensions.retryAfter` (seconds) where a retry later may succeed. The HTTP status of the response stays
 * GraphQL's (200): another field of the operation may have succeeded.
 */
export class IdempotencyGraphQLError extends IntrinsicException {
  override readonly name = 'IdempotencyGraphQLError';
  readonly extensions: { code: IdempotencyErrorCode; status: number; retryAfter?: number };

  constructor(problem: IdempotencyException) {
    super(detailOf(problem));
    const retryAfter = problem.headers['retry-after'];
    this.extensions = { code: problem.code, status: problem.getStatus(), ...(retryAfter === undefined ? {} : { retryAfter: Number(retryAfter) }) };
  }
}

function detailOf(problem: IdempotencyException): string {
  const response = problem.getResponse() as { detail?: unknown };
  return typeof response.detail === 'string' ? response.detail : problem.message;
}

/** Statuses Apollo gives its own error codes, for errors that carry a code and no status. */
const CODE_STATUS: Readonly<Record<string, number>> = { BAD_USER_INPUT: 400, UNAUTHENTICATED: 401, FORBIDDEN: 403 };

/**
 * The HTTP status a resolver's error stands for, which `storeIf` judges as a route's status: an `HttpException`'s
 * own; `extensions.http.status` (Apollo's way to set one); 400, 401 or 403 for the codes `BAD_USER_INPUT`,
 * `UNAUTHENTICATED` and `FORBIDDEN`; anything else is an unexpected failure, a 500.
 */
export function statusOfError(error: unknown): number {
  if (error instanceof HttpException) return error.getStatus();
  const extensions = extensionsOf(error);
  const status = (extensions?.http as { status?: unknown } | undefined)?.status;
  if (typeof status === 'number' && Number.isInteger(status)) return status;
  const code = extensions?.code;
  return typeof code === 'string' && code in CODE_STATUS ? CODE_STATUS[code] : 500;
}

/** A stored resolver error: what GraphQL reports of it. */
interface StoredError {
  error: { message: string; status: number; response?: string | object; extensions?: GraphQLErrorExtensions };
}

/** The bytes stored for an error that is the mutation's final answer. */
export function encodeError(error: unknown, status: number): Buffer {
  const message = error instanceof Error ? error.message : String(error);
  const stored: StoredError = { error: { message, status } };
  if (error instanceof HttpException) stored.error.response = error.getResponse();
  else {
    const extensions = extensionsOf(error);
    if (extensions) stored.error.extensions = extensions;
  }
  return Buffer.from(JSON.stringify(stored), 'utf8');
}

/** Whether stored bytes hold an error (else a result). */
export function isStoredError(body: Buffer): boolean {
  return body.subarray(0, 9).toString('latin1') === '{"error":';
}

/**
 * The error a replay throws: one that GraphQL (and Nest's Apollo driver, which turns an `HttpException` into
 * its `code` and `originalError`) reports as it reported the first.
 */
export function decodeError(body: Buffer): Error {
  const { error } = JSON.parse(body.toString('utf8')) as StoredError;
  if (error.response !== undefined) return new HttpException(error.response, error.status);
  return new ReplayedResolverError(error.message, error.extensions);
}

class ReplayedResolverError extends IntrinsicException {
  override readonly name = 'ReplayedResolverError';

  constructor(
    message: string,
    readonly extensions: GraphQLErrorExtensions | undefined,
  ) {
    super(message);
  }
}

function extensionsOf(error: unknown): GraphQLErrorExtensions | undefined {
  const extensions = (error as { extensions?: unknown } | null | undefined)?.extensions;
  return typeof extensions === 'object' && extensions !== null ? (extensions as GraphQLErrorExtensions) : undefined;
}
