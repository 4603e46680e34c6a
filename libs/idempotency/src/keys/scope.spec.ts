import { IdempotencyKeyInvalidException } from '../errors/idempotency.errors';
import { UNBOUNDED } from './request-function';
import { buildScope, readTenant } from './scope';

describe('buildScope', () => {
  it('names the provider, the route and the tenant', () => {
    expect(buildScope('POST /orders', undefined, undefined)).toBe('POST /orders');
    expect(buildScope('POST /hooks', 'stripe', undefined)).toBe('stripe:POST /hooks');
    expect(buildScope('POST /orders', undefined, 'acme')).toBe('POST /orders#acme');
  });

  it.each([
    ['a lone high surrogate', 'a\uD800'],
    ['a lone low surrogate', '\uDC00'],
    ['a NUL', 'a\u0000b'],
    ['a control character', 'a\nb'],
  ])('refuses a tenant holding %s', (_case, tenant) => {
    expect(() => buildScope('POST /orders', undefined, tenant)).toThrow(IdempotencyKeyInvalidException);
  });

  it('keeps paired surrogates', () => {
    expect(buildScope('POST /orders', undefined, 'a\uD83D\uDE00')).toBe('POST /orders#a\uD83D\uDE00');
  });
});

describe('readTenant', () => {
  it('takes strings and numbers, nothing for undefined or null, and refuses anything else', async () => {
    expect(readTenant((request: { id: number }) => request.id, { id: 42 }, UNBOUNDED)).toBe('42');
    expect(readTenant(() => null, {}, UNBOUNDED)).toBeUndefined();
    expect(readTenant(undefined, {}, UNBOUNDED)).toBeUndefined();
    expect(() => readTenant(() => ({}) as never, {}, UNBOUNDED)).toThrow(IdempotencyKeyInvalidException);
    await expect(readTenant(() => Promise.resolve('acme'), {}, UNBOUNDED)).resolves.toBe('acme');
    await expect(readTenant(() => Promise.resolve({} as never), {}, UNBOUNDED)).rejects.toThrow(IdempotencyKeyInvalidException);
  });
});
