import type { StoredResponse } from '../storage/idempotency-store';
import type { CapturedResponse } from './response-capture';

/** Headers replayed with every stored response; `replayHeaders` adds to them. */
export const DEFAULT_REPLAY_HEADERS: readonly string[] = ['content-type', 'location', 'etag', 'last-modified'];

/** Never stored: a replay must not hand one client's session to another. */
const NEVER_STORED = new Set(['set-cookie']);

/** Statuses whose responses cannot carry a body (RFC 9110). */
const BODYLESS = new Set([204, 205, 304]);

export const REPLAYED_HEADER = 'idempotent-replayed';

/** The part of a captured response that is stored: status, allow-listed headers and the body bytes. */
export function toStoredResponse(captured: CapturedResponse, allowed: ReadonlySet<string>): StoredResponse {
  return {
    status: captured.status,
    headers: captured.headers.filter(([name]) => allowed.has(name) && !NEVER_STORED.has(name)),
    body: captured.body,
  };
}

/**
 * The stored response as a web `Response`, which Nest sends as the whole answer on Express and on
 * Fastify, with `Idempotent-Replayed: true`.
 */
export function toReplay(stored: StoredResponse): Response {
  const headers = new Headers();
  for (const [name, value] of stored.headers) headers.append(name, value);
  headers.set(REPLAYED_HEADER, 'true');
  const body = BODYLESS.has(stored.status) || stored.body.length === 0 ? null : new Uint8Array(stored.body);
  if (body) headers.set('content-length', String(body.byteLength));
  return new Response(body, { status: stored.status, headers });
}
