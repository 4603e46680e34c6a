import type { IncomingHttpHeaders } from 'node:http';

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

/** A header's value; a repeated header counts as absent-or-ambiguous and yields its first value. */
export function headerValue(request: IdempotencyRequest, name: string): string | undefined {
  const value = request.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
