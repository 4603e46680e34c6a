import { createHash } from 'node:crypto';
import { configure } from 'safe-stable-stringify';
import { type IdempotencyRequest, requestTarget } from './idempotency-request';
import type { FingerprintFunction } from './route-functions';
import { type Awaitable, callRequestFunction, type RequestFunctionBound } from './keys/request-function';

// Deterministic: object keys sorted, so `{a,b}` and `{b,a}` are the same request. Circular values
// cannot arrive from a parsed body; `bigint` can from custom parsers. Past 1,000 levels of nesting (which
// JSON.parse accepts and a recursive serializer cannot follow: 5,000 overflow the stack) a value counts
// as "[Object]"/"[Array]": a body that deep is fingerprinted by its first 1,000 levels.
export const FINGERPRINT_MAX_DEPTH = 1000;
const canonicalJson = configure({ deterministic: true, bigint: true, circularValue: Error, maximumDepth: FINGERPRINT_MAX_DEPTH });

/** The bytes of a body that identify it: raw bytes and strings as they are, anything else as canonical JSON. */
export function canonicalBody(body: unknown): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  return Buffer.from(canonicalJson(body ?? null) ?? 'null', 'utf8');
}

/** Hex sha-256 of the parts, each length-prefixed so that no two lists of parts hash alike. */
export function sha256(...parts: Array<string | Buffer>): string {
  const hash = createHash('sha256');
  // Strings go to the hash as they are (UTF-8), with their byte length: no copy of them as a Buffer first.
  for (const part of parts) {
    if (typeof part === 'string') hash.update(`${Buffer.byteLength(part, 'utf8')}:`).update(part, 'utf8');
    else hash.update(`${part.length}:`).update(part);
  }
  return hash.digest('hex');
}

/** The default fingerprint: method, request path (with its query) and the canonical body. */
export function requestFingerprint(method: string, target: string, body: unknown): string {
  return sha256(method.toUpperCase(), target, canonicalText(body));
}

/** {@link canonicalBody} without the copy into a Buffer where the body is not bytes already. */
function canonicalText(body: unknown): string | Buffer {
  if (Buffer.isBuffer(body) || typeof body === 'string') return body;
  return canonicalJson(body ?? null) ?? 'null';
}

/**
 * The fingerprint a route compares repeats by: `null` when the check is off, the route's own function's
 * (awaited within the bound when it returns a promise), or the default over the concrete path, not the
 * route's pattern: the same key on another resource is another request.
 */
export function fingerprintOf(fingerprint: boolean | FingerprintFunction, request: IdempotencyRequest, bound: RequestFunctionBound): Awaitable<string | null> {
  if (fingerprint === false) return null;
  if (typeof fingerprint === 'function') return callRequestFunction(fingerprint, request, 'request fingerprint', bound);
  return requestFingerprint(request.method, requestTarget(request), request.body);
}
