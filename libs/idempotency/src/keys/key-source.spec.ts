import { IdempotencyKeyInvalidException } from '../errors/idempotency.errors';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import type { IdempotencyRequest } from '../idempotency-request';
import { assertKeySource, presetOf, resolveKey } from './key-source';

const request = (headers: Record<string, string> = {}, body?: unknown): IdempotencyRequest => ({
  method: 'POST',
  url: '/x',
  headers,
  body,
});

describe('resolveKey', () => {
  it('reads the Idempotency-Key header, bare or as a Structured Field string', () => {
    expect(resolveKey('header', request({ 'idempotency-key': 'abc' }))).toBe('abc');
    expect(resolveKey('header', request({ 'idempotency-key': '"abc"' }))).toBe('abc');
    expect(resolveKey('header', request({ 'idempotency-key': '"a\\"b"' }))).toBe('a"b');
  });

  it('finds no key when the source has none', () => {
    expect(resolveKey('header', request())).toBeUndefined();
    expect(resolveKey('stripe', request({}, { type: 'x' }))).toBeUndefined();
    expect(resolveKey('payload-hash', request())).toBeUndefined();
  });

  it('refuses a key that is not well-formed Unicode (a lone surrogate), and keeps paired ones', () => {
    const fromBody = (id: string) => resolveKey((req: IdempotencyRequest) => (req.body as { id: string }).id, request({}, { id }));
    expect(() => fromBody('a\uD800')).toThrow(IdempotencyKeyInvalidException);
    expect(() => fromBody('\uDC00a')).toThrow(IdempotencyKeyInvalidException);
    expect(fromBody('a\uD83D\uDE00')).toBe('a\uD83D\uDE00');
  });

  it('takes the first source of a list that yields a key', () => {
    const source = [{ header: 'X-Request-Id' }, (req: IdempotencyRequest) => (req.body as { id?: string }).id] as const;
    expect(resolveKey(source, request({ 'x-request-id': 'h' }, { id: 'b' }))).toBe('h');
    expect(resolveKey(source, request({}, { id: 'b' }))).toBe('b');
  });

  it('hashes the canonical body for payload-hash, whatever the order of its keys', () => {
    const a = resolveKey('payload-hash', request({}, { a: 1, b: [1, { c: 2, d: 3 }] }));
    const b = resolveKey('payload-hash', request({}, { b: [1, { d: 3, c: 2 }], a: 1 }));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).toBe(b);
    expect(resolveKey('payload-hash', request({}, { a: 2 }))).not.toBe(a);
  });

  it('reads the Stripe event id from the body', () => {
    expect(resolveKey('stripe', request({}, { id: 'evt_123', type: 'charge.succeeded' }))).toBe('evt_123');
  });

  it('accepts numbers from key functions and refuses objects', () => {
    expect(resolveKey(() => 42, request())).toBe('42');
    expect(() => resolveKey(() => ({}), request())).toThrow(IdempotencyKeyInvalidException);
  });

  it.each([
    ['empty', ''],
    ['empty quoted', '""'],
    ['over 255 characters', 'x'.repeat(256)],
    ['with a control character', 'a\u0001b'],
    ['with DEL', 'a\u007fb'],
    ['a malformed Structured Field string', '"abc'],
    ['a Structured Field that is not a string', '"abc";a=?2'],
  ])('refuses a key that is %s', (_case, value) => {
    expect(() => resolveKey('header', request({ 'idempotency-key': value }))).toThrow(IdempotencyKeyInvalidException);
  });

  it('counts 255 characters after removing the quotes, and counts characters, not UTF-16 units', () => {
    expect(resolveKey('header', request({ 'idempotency-key': `"${'x'.repeat(255)}"` }))).toHaveLength(255);
    expect(resolveKey(() => '😀'.repeat(255), request())).toBe('😀'.repeat(255));
  });
});

describe('assertKeySource', () => {
  it('fails at startup on a source that can never work, saying what would', () => {
    expect(() => assertKeySource('strpe' as never, '@Idempotent()')).toThrow(IdempotencyConfigurationError);
    expect(() => assertKeySource({ header: '' } as never, '@Idempotent()')).toThrow(/'payload-hash'/);
  });

  it('finds the preset whose TTL becomes the default', () => {
    expect(presetOf(['header', 'stripe'])).toBe('stripe');
    expect(presetOf('header')).toBeUndefined();
  });
});
