import { UnstorableResponseError } from '../errors/configuration.errors';

/**
 * A resolver's result as stored: JSON, with the places of the values JSON has no type for (`Date`, `bigint`)
 * listed beside it, so that a replay hands GraphQL the same data: a `DateTime` field still gets a `Date`.
 * Class instances are stored as their own enumerable fields (what GraphQL reads of them).
 */
interface StoredData {
  data: unknown;
  /** Path of each `Date` (stored as its ISO string) and `bigint` (as its decimal string). */
  typed?: Array<[path: Array<string | number>, type: 'Date' | 'bigint']>;
}

/**
 * The bytes stored for a result. Throws `UnstorableResponseError` for what cannot be replayed as data
 * (a function, a symbol, a stream, a cycle): the claim is given back and the mutation fails loudly.
 */
export function encodeResult(value: unknown, field: string): Buffer {
  const typed: NonNullable<StoredData['typed']> = [];
  const seen = new Set<object>();
  const plain = (item: unknown, path: Array<string | number>): unknown => {
    if (item === undefined || item === null || typeof item === 'string' || typeof item === 'boolean') return item;
    if (typeof item === 'number') return Number.isFinite(item) ? item : String(item);
    if (typeof item === 'bigint') {
      typed.push([path, 'bigint']);
      return item.toString();
    }
    if (item instanceof Date) {
      typed.push([path, 'Date']);
      return Number.isNaN(item.getTime()) ? null : item.toISOString();
    }
    if (typeof item !== 'object') throw unstorable(field, `a ${typeof item}`, path);
    if (seen.has(item)) throw unstorable(field, 'a cycle', path);
    if (typeof (item as { pipe?: unknown }).pipe === 'function' || Symbol.asyncIterator in item) throw unstorable(field, 'a stream', path);
    seen.add(item);
    try {
      // GraphQL reads any iterable (a Set) as a list.
      if (Array.isArray(item) || Symbol.iterator in item) return Array.from(item as Iterable<unknown>, (entry, index) => plain(entry, [...path, index]));
      const out: Record<string, unknown> = {};
      for (const [name, entry] of Object.entries(item)) if (entry !== undefined) out[name] = plain(entry, [...path, name]);
      return out;
    } finally {
      seen.delete(item);
    }
  };
  const stored: StoredData = { data: plain(value, []) };
  if (typed.length > 0) stored.typed = typed;
  return Buffer.from(JSON.stringify(stored), 'utf8');
}

/** The result a replay hands GraphQL: the stored data with its `Date` and `bigint` values restored. */
export function decodeResult(body: Buffer): unknown {
  const stored = JSON.parse(body.toString('utf8')) as StoredData;
  if (!stored.typed) return stored.data;
  const holder: Record<string, unknown> = { data: stored.data };
  for (const [path, type] of stored.typed) {
    let parent: Record<string | number, unknown> = holder;
    let name: string | number = 'data';
    for (const step of path) {
      parent = parent[name] as Record<string | number, unknown>;
      name = step;
    }
    const text = parent[name];
    if (typeof text === 'string') parent[name] = type === 'Date' ? new Date(text) : BigInt(text);
  }
  return holder.data;
}

function unstorable(field: string, what: string, path: Array<string | number>): UnstorableResponseError {
  const at = path.length === 0 ? '' : ` at ${path.join('.')}`;
  return new UnstorableResponseError(
    `${field} returned ${what}${at}, which an idempotent mutation cannot store and replay. ` +
      'Return plain data (objects, arrays, strings, numbers, Dates), or remove @Idempotent() from this mutation.',
  );
}
