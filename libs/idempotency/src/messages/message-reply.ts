import { from, type Observable, throwError } from 'rxjs';
import { UnstorableResponseError } from '../errors/configuration.errors';
import { requireOptionalPeer } from '../optional-peer';
import type { StoredResponse } from '../storage/idempotency-store';

/**
 * A handler's answer as stored: each value it emitted as its JSON text (`null` for `undefined`, which JSON
 * drops), or the error it threw as an `RpcException`. Replaying the parsed text gives the transport the same
 * value to serialize, so the duplicate's reply has the first reply's bytes.
 */
type StoredReply = { values: Array<string | null> } | { error: string };

interface RpcExceptionLike {
  getError(): unknown;
}

/** Nest's `RpcException`, by shape: the handler's deliberate answer, stored and replayed like a 4xx over HTTP. */
export function isRpcException(error: unknown): error is RpcExceptionLike & Error {
  return error instanceof Error && error.constructor.name === 'RpcException' && typeof (error as Partial<RpcExceptionLike>).getError === 'function';
}

export function storedValues(values: readonly unknown[], maxBytes: number, name: string): StoredResponse {
  return stored({ values: values.map((value) => (value === undefined ? null : JSON.stringify(value))) }, maxBytes, name);
}

export function storedError(error: RpcExceptionLike, maxBytes: number, name: string): StoredResponse {
  return stored({ error: JSON.stringify(error.getError()) ?? 'null' }, maxBytes, name);
}

function stored(reply: StoredReply, maxBytes: number, name: string): StoredResponse {
  const body = Buffer.from(JSON.stringify(reply), 'utf8');
  if (body.length > maxBytes) {
    throw new UnstorableResponseError(`${name} answered more than maxResponseBytes (${maxBytes}) bytes. Raise maxResponseBytes for it, or answer less.`);
  }
  return { status: 200, headers: [], body };
}

/** The stored answer as the handler gave it: the same values, or the same `RpcException`. */
export function replayed(response: StoredResponse): Observable<unknown> {
  const reply = (response.body.length === 0 ? { values: [] } : JSON.parse(response.body.toString('utf8'))) as StoredReply;
  if ('error' in reply) {
    // Only a message handler's replay gets here, so @nestjs/microservices is installed.
    const { module } = requireOptionalPeer<{ RpcException: new (error: unknown) => Error }>('@nestjs/microservices');
    const error: unknown = JSON.parse(reply.error);
    return throwError(() => (module ? new module.RpcException(error) : new Error(String(error))));
  }
  return from(reply.values.map((text) => (text === null ? undefined : (JSON.parse(text) as unknown))));
}
