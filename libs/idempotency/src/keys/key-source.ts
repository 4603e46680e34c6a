import { IdempotencyKeyInvalidException } from '../errors/idempotency.errors';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { canonicalBody, sha256 } from '../fingerprint';
import { headerValue, type IdempotencyRequest, requestTarget } from '../idempotency-request';
import { parseIdempotencyKeyHeader } from './idempotency-key-header';
import { isProviderPresetName, PROVIDER_PRESETS, type ProviderPresetName } from './provider-presets';

/** The longest key accepted, in characters, after removing Structured Field quotes. */
export const MAX_KEY_LENGTH = 255;

/** Reads a key from the request; `undefined` or `null` when the request has none. */
export type KeyFunction<TRequest = IdempotencyRequest> = (request: TRequest) => unknown;

/** One place a key can come from. */
export type KeySourceItem<TRequest = IdempotencyRequest> =
  | 'header'
  | 'payload-hash'
  | ProviderPresetName
  | { header: string }
  | KeyFunction<TRequest>;

/**
 * Where the key comes from: one source, or several of which the first that yields a key wins.
 *
 * @example
 * \@Idempotent({ key: [{ header: 'X-Request-Id' }, 'payload-hash'] })
 */
export type KeySource<TRequest = IdempotencyRequest> = KeySourceItem<TRequest> | ReadonlyArray<KeySourceItem<TRequest>>;

const DEFAULT_HEADER = 'Idempotency-Key';

/** Fails at startup, with the fix, on a key source that can never work. */
export function assertKeySource(source: KeySource<never>, where: string): void {
  for (const item of toList(source)) {
    if (typeof item === 'function') continue;
    if (typeof item === 'object' && item !== null && typeof item.header === 'string' && item.header !== '') continue;
    if (item === 'header' || item === 'payload-hash' || (typeof item === 'string' && isProviderPresetName(item))) continue;
    throw new IdempotencyConfigurationError(
      `${where}: key ${JSON.stringify(item)} is not a key source. Use 'header', { header: 'Name' }, 'payload-hash', ` +
        `a provider preset (${Object.keys(PROVIDER_PRESETS).join(', ')}), a function of the request, or an array of these.`,
    );
  }
}

/** The first preset named in the source, whose TTL becomes the route's default. */
export function presetOf(source: KeySource<never>): ProviderPresetName | undefined {
  return toList(source).find((item): item is ProviderPresetName => typeof item === 'string' && isProviderPresetName(item));
}

/** A key found in a request, and the provider preset that found it. */
export interface FoundKey {
  key: string;
  provider?: ProviderPresetName;
}

/**
 * The request's key: from the first source that yields one, validated. `undefined` when no source
 * finds a key; throws `IdempotencyKeyInvalidException` for an empty, too long or control-character key.
 */
export function findKey<TRequest extends IdempotencyRequest>(source: KeySource<TRequest>, request: TRequest): FoundKey | undefined {
  for (const item of toList(source)) {
    const key = readKey(item, request);
    if (key === undefined) continue;
    return typeof item === 'string' && isProviderPresetName(item) ? { key: validateKey(key), provider: item } : { key: validateKey(key) };
  }
  return undefined;
}

/** The request's key alone (see {@link findKey}). */
export function resolveKey<TRequest extends IdempotencyRequest>(source: KeySource<TRequest>, request: TRequest): string | undefined {
  return findKey(source, request)?.key;
}

function readKey<TRequest extends IdempotencyRequest>(item: KeySourceItem<TRequest>, request: TRequest): string | undefined {
  if (typeof item === 'function') return fromValue(item(request));
  if (typeof item === 'object') return fromHeader(request, item.header);
  if (item === 'header') return fromHeader(request, DEFAULT_HEADER);
  // The path is part of it: the same payload sent to another resource is another request.
  if (item === 'payload-hash') return request.body === undefined ? undefined : sha256(requestPath(request), canonicalBody(request.body));
  return fromValue(PROVIDER_PRESETS[item].key(request));
}

function requestPath(request: IdempotencyRequest): string {
  return requestTarget(request).split('?', 1)[0];
}

function fromHeader(request: IdempotencyRequest, name: string): string | undefined {
  const value = headerValue(request, name);
  return value === undefined ? undefined : parseIdempotencyKeyHeader(value);
}

function fromValue(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  throw new IdempotencyKeyInvalidException(`The idempotency key must be a string, not ${typeof value}.`);
}

function validateKey(key: string): string {
  if (key.length === 0) throw new IdempotencyKeyInvalidException('The idempotency key is empty.');
  if ([...key].length > MAX_KEY_LENGTH) {
    throw new IdempotencyKeyInvalidException(`The idempotency key is longer than ${MAX_KEY_LENGTH} characters.`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(key)) {
    throw new IdempotencyKeyInvalidException('The idempotency key contains control characters.');
  }
  if (LONE_SURROGATE.test(key)) {
    // Not text: encoded as UTF-8 it would become U+FFFD, and two different keys one record.
    throw new IdempotencyKeyInvalidException('The idempotency key is not well-formed Unicode (a lone surrogate).');
  }
  return key;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function toList<T>(source: T | ReadonlyArray<T>): ReadonlyArray<T> {
  return Array.isArray(source) ? source : [source as T];
}
