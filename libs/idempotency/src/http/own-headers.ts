import type { OutgoingHttpHeaders } from 'node:http';
import type { ReplacementResponse } from './response-message';

/** Headers of this response, lower-case names; a repeated header has several entries. */
export type OwnHeaders = ReadonlyArray<readonly [string, string]>;

/**
 * The headers the app has set on this response so far (CORS, request ids, security headers from
 * middleware), taken before the handler runs: a replacement answer keeps them. Fastify keeps
 * `reply.header()` values on the reply until it writes the head; its `getHeaders()` adds them to Node's.
 */
export function snapshotHeaders(response: object): OwnHeaders {
  const getHeaders = (response as { getHeaders?: () => OutgoingHttpHeaders }).getHeaders;
  return typeof getHeaders === 'function' ? headerPairs(getHeaders.call(response)) : [];
}

/** A `getHeaders()` object as name and value pairs, lower-case names, one pair per value of a repeated header. */
export function headerPairs(headers: OutgoingHttpHeaders): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (Array.isArray(value)) for (const one of value) pairs.push([lower, String(one)]);
    else pairs.push([lower, String(value)]);
  }
  return pairs;
}

/**
 * The replacement with this response's own headers added. On a clash the replacement's value wins (a
 * replay's stored `content-type`, say); Content-Length is always the replacement's own.
 */
export function withOwnHeaders(response: ReplacementResponse, own: OwnHeaders): ReplacementResponse {
  if (own.length === 0) return response;
  const replaced = new Set(response.headers.map(([name]) => name));
  const kept = own.filter(([name]) => !replaced.has(name) && name !== 'content-length');
  return { ...response, headers: [...kept.map(([name, value]): [string, string] => [name, value]), ...response.headers] };
}
