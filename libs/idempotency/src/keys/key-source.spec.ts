import { IdempotencyKeyInvalidException } from '../errors/idempotency.errors';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import type { IdempotencyRequest } from '../idempotency-request';
import { assertKeySource, findKey, type KeySource, presetOf } from './key-source';

const request = (headers: Record<string, string> = {}, body?: unknown): IdempotencyRequest => ({
  method: 'POST',
  url: '/x',
  headers,
  body,
});

/** The key alone, awaited. */
const keyOf = async (source: KeySource, req: IdempotencyRequest) => (await findKey(source, req))?.key;

describe('findKey', () => {
  it('reads the Idempotency-Key header, bare or as a Structured Field string', async () => {
    expect(await keyOf('header', request({ 'idempotency-key': 'abc' }))).toBe('abc');
    expect(await keyOf('header', request({ 'idempotency-key': '"abc"' }))).toBe('abc');
    expect(await keyOf('header', request({ 'idempotency-key': '"a\\"b"' }))).toBe('a"b');
  });

  it('finds no key when the source has none', async () => {
    expect(await keyOf('header', request())).toBeUndefined();
    expect(await keyOf('stripe', request({}, { type: 'x' }))).toBeUndefined();
    expect(await keyOf('payload-hash', request())).toBeUndefined();
  });

  it('refuses a key that is not well-formed Unicode (a lone surrogate), and keeps paired ones', async () => {
    const fromBody = (id: string) => keyOf((req: IdempotencyRequest) => (req.body as { id: string }).id, request({}, { id }));
    await expect(fromBody('a\uD800')).rejects.toThrow(IdempotencyKeyInvalidException);
    await expect(fromBody('\uDC00a')).rejects.toThrow(IdempotencyKeyInvalidException);
    expect(await fromBody('a\uD83D\uDE00')).toBe('a\uD83D\uDE00');
  });

  it('takes the first source of a list that yields a key', async () => {
    const source = [{ header: 'X-Request-Id' }, (req: IdempotencyRequest) => (req.body as { id?: string }).id] as const;
    expect(await keyOf(source, request({ 'x-request-id': 'h' }, { id: 'b' }))).toBe('h');
    expect(await keyOf(source, request({}, { id: 'b' }))).toBe('b');
  });

  it('hashes the canonical body for payload-hash, whatever the order of its keys', async () => {
    const a = await keyOf('payload-hash', request({}, { a: 1, b: [1, { c: 2, d: 3 }] }));
    const b = await keyOf('payload-hash', request({}, { b: [1, { d: 3, c: 2 }], a: 1 }));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).toBe(b);
    expect(await keyOf('payload-hash', request({}, { a: 2 }))).not.toBe(a);
  });

  it('reads the Stripe event id from the body', async () => {
    expect(await keyOf('stripe', request({}, { id: 'evt_123', type: 'charge.succeeded' }))).toBe('evt_123');
  });

  it('accepts numbers from key functions and refuses objects', async () => {
    expect(await keyOf(() => 42, request())).toBe('42');
    await expect(keyOf(() => ({}), request())).rejects.toThrow(IdempotencyKeyInvalidException);
  });

  it('awaits a key function that returns a promise, and the sources after it', async () => {
    expect(await findKey(() => Promise.resolve('k'), request())).toEqual({ key: 'k' });
    expect(await findKey([() => Promise.resolve(undefined), 'stripe'], request({}, { id: 'evt_1' }))).toEqual({ key: 'evt_1', provider: 'stripe' });
    await expect(findKey(() => Promise.resolve('a\u0000b'), request())).rejects.toThrow(IdempotencyKeyInvalidException);
  });

  it('stays synchronous when no function returns a promise', () => {
    expect(findKey('header', request({ 'idempotency-key': 'abc' }))).toEqual({ key: 'abc' });
  });

  it('refuses a key header sent on more than one line, counted in the raw headers', async () => {
    const twice = { ...request({ 'idempotency-key': 'a, a' }), rawHeaders: ['Idempotency-Key', 'a', 'idempotency-key', 'a'] };
    await expect(keyOf('header', twice)).rejects.toThrow(IdempotencyKeyInvalidException);
    // Fastify's request keeps Node's under `raw`.
    const fastify = { ...request({ 'x-github-delivery': 'a, b' }), raw: { rawHeaders: ['X-GitHub-Delivery', 'a', 'X-GitHub-Delivery', 'b'] } };
    await expect(keyOf('github', fastify)).rejects.toThrow(IdempotencyKeyInvalidException);
    const once = { ...request({ 'idempotency-key': 'a, a' }), rawHeaders: ['Idempotency-Key', 'a, a'] };
    expect(await keyOf('header', once)).toBe('a, a');
  });

  it('hashes the method, the path and the query string with the body for payload-hash', async () => {
    const at = (url: string, method = 'POST') => keyOf('payload-hash', { method, url, headers: {}, body: { a: 1 } });
    expect(await at('/x?notify=no')).not.toBe(await at('/x?notify=yes'));
    expect(await at('/x')).not.toBe(await at('/y'));
    expect(await at('/x')).not.toBe(await at('/x', 'PUT'));
  });

  it.each([
    ['empty', ''],
    ['empty quoted', '""'],
    ['over 255 characters', 'x'.repeat(256)],
    ['with a control character', 'a\u0001b'],
    ['with DEL', 'a\u007fb'],
    ['a malformed Structured Field string', '"abc'],
    ['a Structured Field that is not a string', '"abc";a=?2'],
  ])('refuses a key that is %s', async (_case, value) => {
    await expect(keyOf('header', request({ 'idempotency-key': value }))).rejects.toThrow(IdempotencyKeyInvalidException);
  });

  it('counts 255 characters after removing the quotes, and counts characters, not UTF-16 units', async () => {
    expect(await keyOf('header', request({ 'idempotency-key': `"${'x'.repeat(255)}"` }))).toHaveLength(255);
    expect(await keyOf(() => '😀'.repeat(255), request())).toBe('😀'.repeat(255));
  });
});

describe('assertKeySource', () => {
  it('fails at startup on a source that can never work, saying what would', () => {
    expect(() => assertKeySource('strpe' as never, '@Idempotent()')).toThrow(IdempotencyConfigurationError);
    expect(() => assertKeySource({ header: '' }, '@Idempotent()')).toThrow(/'payload-hash'/);
  });

  it('finds the preset whose TTL becomes the default', () => {
    expect(presetOf(['header', 'stripe'])).toBe('stripe');
    expect(presetOf('header')).toBeUndefined();
  });
});
