import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { headerValue } from '../idempotency-request';
import { parseIdempotencyKeyHeader } from '../keys/idempotency-key-header';
import { validateKey } from '../keys/key-source';
import { textOf } from '../keys/key-text';
import { callRequestFunction, type RequestFunctionBound } from '../keys/request-function';
import type { GraphQLMutationCall } from './mutation-call';
import type { MutationKeySource, MutationKeySourceItem } from './mutation-options';

const KEY = 'idempotency key';
const DEFAULT_HEADER = 'Idempotency-Key';

/** Fails at start, with the fix, on a mutation key source that can never work. */
export function assertMutationKeySource(source: unknown, where: string): asserts source is MutationKeySource {
  for (const item of toList(source)) {
    if (isMutationKeySourceItem(item)) continue;
    throw new IdempotencyConfigurationError(
      `${where}: key ${JSON.stringify(item)} is not a key source of a GraphQL mutation. Use 'header', { header: 'Name' }, ` +
        "{ argument: 'idempotencyKey' }, a function of the mutation call, or an array of these.",
    );
  }
}

export function isMutationKeySourceItem(item: unknown): item is MutationKeySourceItem {
  if (item === 'header' || typeof item === 'function') return true;
  if (typeof item !== 'object' || item === null) return false;
  const { header, argument } = item as { header?: unknown; argument?: unknown };
  return (typeof header === 'string' && header !== '') || (typeof argument === 'string' && argument !== '');
}

/**
 * The mutation's key, validated as an HTTP key is (empty, too long, control characters, a header on more
 * than one line: `IDEMPOTENCY_KEY_INVALID`), from the first source that yields one; `undefined` for none.
 */
export async function findMutationKey(source: MutationKeySource, call: GraphQLMutationCall, bound: RequestFunctionBound): Promise<string | undefined> {
  for (const item of toList(source)) {
    const key = textOf(await readKey(item, call, bound), KEY);
    if (key !== undefined) return validateKey(key);
  }
  return undefined;
}

function readKey(item: MutationKeySourceItem, call: GraphQLMutationCall, bound: RequestFunctionBound): unknown {
  if (typeof item === 'function') return callRequestFunction(item, call, KEY, bound);
  if (typeof item === 'object' && 'argument' in item) return call.args[item.argument];
  const name = item === 'header' ? DEFAULT_HEADER : item.header;
  const value = call.request ? headerValue(call.request, name) : undefined;
  return value === undefined ? undefined : parseIdempotencyKeyHeader(value);
}

function toList<T>(source: T | ReadonlyArray<T>): ReadonlyArray<T> {
  return Array.isArray(source) ? source : [source as T];
}
