/** The default prefix of the Redis store's keys. */
export const DEFAULT_REDIS_PREFIX = 'idempotency:';

/**
 * The Redis key of one record. Each record is one hash under one key, so every script of the store
 * touches a single key: on Redis Cluster that is a single slot, and records spread over all of them.
 * Scope and key are URI-encoded, so that `:` inside them never makes two records meet.
 *
 * @example
 * redisRecordKey('idempotency:', 'POST /orders', 'k1') // 'idempotency:POST%20%2Forders:k1'
 */
export function redisRecordKey(prefix: string, scope: string, key: string): string {
  return `${prefix}${encode(scope)}:${encode(key)}`;
}

const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * URI-encoding, except a lone surrogate (which encodeURIComponent refuses, and a scope function may
 * return) becomes `%uXXXX`: a form encodeURIComponent never writes, so no two strings meet.
 */
function encode(text: string): string {
  // Most scopes and keys hold no surrogate at all: one scan, then encodeURIComponent alone.
  if (!SURROGATE.test(text)) return encodeURIComponent(text);
  return text
    .split(/([\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF])/)
    .map((part, index) => (index % 2 === 1 ? `%u${part.charCodeAt(0).toString(16).toUpperCase()}` : encodeURIComponent(part)))
    .join('');
}

/**
 * The fields of a record's hash. Times are milliseconds since the epoch on Redis' clock (`TIME`);
 * a field that is absent is null (`fingerprint`, `owner`, `completed`, `lease`, the response).
 */
export const REDIS_FIELDS = {
  state: 'state', // 'in_flight' | 'completed'
  fingerprint: 'fp',
  owner: 'owner',
  attempts: 'attempts',
  createdAt: 'created',
  completedAt: 'completed',
  leaseExpiresAt: 'lease',
  expiresAt: 'expires',
  status: 'status',
  headers: 'headers', // JSON array of [name, value]
  body: 'body', // the bytes of the body
} as const;
