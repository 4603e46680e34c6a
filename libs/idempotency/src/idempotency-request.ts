import type { IncomingHttpHeaders } from 'node:http';
import { IdempotencyKeyInvalidException } from './errors/idempotency.errors';

/**
 * What the library reads of a request, common to Express and Fastify. Key, scope and fingerprint
 * functions receive the platform's own request object; annotate the parameter with that type
 * (`(req: Request) => req.body.eventId`) to read more of it.
 */
export interface IdempotencyRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body?: unknown;
  /** The raw body, when the app is created with `rawBody: true`. */
  readonly rawBody?: Buffer;
  /** The authenticated principal, when an auth guard set one. */
  readonly user?: unknown;
}

/** The route's path pattern (`/orders/:id`), not the URL, on Express and on Fastify. */
export function routePath(request: IdempotencyRequest): string | undefined {
  const express = request as { route?: { path?: unknown }; baseUrl?: string };
  if (typeof express.route?.path === 'string') return `${express.baseUrl ?? ''}${express.route.path}`;
  const fastify = request as { routeOptions?: { url?: string } };
  return fastify.routeOptions?.url;
}

/** The path and query the client asked for, before any rewriting by routers. */
export function requestTarget(request: IdempotencyRequest): string {
  return (request as { originalUrl?: string }).originalUrl ?? request.url;
}

/**
 * A header's value, for a key source. A header sent on more than one line is refused: Node joins the
 * lines as `a, b`, another key than either line, which a retry on one line would not find again.
 */
export function headerValue(request: IdempotencyRequest, name: string): string | undefined {
  const lower = name.toLowerCase();
  const value = request.headers[lower];
  if (value === undefined) return undefined;
  if (Array.isArray(value) || headerLines(request, lower) > 1) {
    throw new IdempotencyKeyInvalidException(`The ${name} header came on more than one line: send one value, on one line.`);
  }
  return value;
}

/**
 * How many lines of the request carry the header. Only the raw headers tell: the joined value cannot be
 * told from one line holding a comma. A request without them (built by hand) counts as one line.
 */
function headerLines(request: IdempotencyRequest, lower: string): number {
  const raw = (request as { rawHeaders?: readonly string[] }).rawHeaders ?? (request as { raw?: { rawHeaders?: readonly string[] } }).raw?.rawHeaders;
  if (!raw) return 1;
  let lines = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === lower.length && raw[i].toLowerCase() === lower) lines++;
  return lines;
}
