import { IdempotencyKeyInvalidException } from '../errors/idempotency.errors';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { requestFingerprint } from '../fingerprint';
import { headerValue, type IdempotencyRequest, requestTarget } from '../idempotency-request';
import { parseIdempotencyKeyHeader } from './idempotency-key-header';
import { assertRecordText, textOf } from './key-text';
import { type Awaitable, callRequestFunction, isPromiseLike, type RequestFunctionBound, UNBOUNDED } from './request-function';
import { isProviderPresetName, PROVIDER_PRESETS, type ProviderPresetName } from './provider-presets';

/** The longest key accepted, in characters, after removing Structured Field quotes. */
export const MAX_KEY_LENGTH = 255;

/**
 * Reads a key from the request, or a promise of it; `undefined` or `null` when the request has none.
 *
 * @example
 * \@Idempotent({ key: async (req: Request) => (await deliveries.find(req.body.id))?.eventId })
 */
export type KeyFunction<TRequest = IdempotencyRequest> = (request: TRequest) => unknown;

/** One place a key can come from. */
export type KeySourceItem<TRequest = IdempotencyRequest> = 'header' | 'payload-hash' | ProviderPresetName | { header: string } | KeyFunction<TRequest>;

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

const KEY = 'idempotency key';

/**
 * The request's key: from the first source that yields one, validated; `undefined` when no source finds
 * a key. Throws (or rejects with) `IdempotencyKeyInvalidException` for an empty, too long or
 * control-character key, or a header sent on more than one line. Synchronous unless a key function
 * returns a promise, which is awaited within the bound (see {@link callRequestFunction}).
 */
export function findKey<TRequest extends IdempotencyRequest>(
  source: KeySource<TRequest>,
  request: TRequest,
  bound: RequestFunctionBound = UNBOUNDED,
): Awaitable<FoundKey | undefined> {
  const items = toList(source);
  for (let index = 0; index < items.length; index++) {
    const item = items[index];
    const read = readKey(item, request, bound);
    if (isPromiseLike(read)) return findAsync(items, index, read, request, bound);
    if (read !== undefined) return found(item, read);
  }
  return undefined;
}

/** The rest of {@link findKey}, once a key function has returned a promise. */
async function findAsync<TRequest extends IdempotencyRequest>(
  items: ReadonlyArray<KeySourceItem<TRequest>>,
  from: number,
  pending: PromiseLike<unknown>,
  request: TRequest,
  bound: RequestFunctionBound,
): Promise<FoundKey | undefined> {
  const first = textOf(await pending, KEY);
  if (first !== undefined) return found(items[from], first);
  for (let index = from + 1; index < items.length; index++) {
    const key = textOf(await readKey(items[index], request, bound), KEY);
    if (key !== undefined) return found(items[index], key);
  }
  return undefined;
}

function found<TRequest>(item: KeySourceItem<TRequest>, key: string): FoundKey {
  return typeof item === 'string' && isProviderPresetName(item) ? { key: validateKey(key), provider: item } : { key: validateKey(key) };
}

/** The key one source finds: a string, `undefined` for none, or the pending result of a key function. */
function readKey<TRequest extends IdempotencyRequest>(
  item: KeySourceItem<TRequest>,
  request: TRequest,
  bound: RequestFunctionBound,
): string | undefined | PromiseLike<unknown> {
  if (typeof item === 'function') {
    const value = callRequestFunction(item, request, KEY, bound);
    return isPromiseLike(value) ? value : textOf(value, KEY);
  }
  if (typeof item === 'object') return fromHeader(request, item.header);
  if (item === 'header') return fromHeader(request, DEFAULT_HEADER);
  // The whole request: the same payload sent to another resource, or with another query, is another request.
  if (item === 'payload-hash') return request.body === undefined ? undefined : requestFingerprint(request.method, requestTarget(request), request.body);
  return textOf(PROVIDER_PRESETS[item].key(request), KEY);
}

function fromHeader(request: IdempotencyRequest, name: string): string | undefined {
  const value = headerValue(request, name);
  return value === undefined ? undefined : parseIdempotencyKeyHeader(value);
}

export function validateKey(key: string): string {
  if (key.length === 0) throw new IdempotencyKeyInvalidException('The idempotency key is empty.');
  if ([...key].length > MAX_KEY_LENGTH) {
    throw new IdempotencyKeyInvalidException(`The idempotency key is longer than ${MAX_KEY_LENGTH} characters.`);
  }
  return assertRecordText(key, KEY);
}

function toList<T>(source: T | ReadonlyArray<T>): ReadonlyArray<T> {
  return Array.isArray(source) ? source : [source as T];
}
