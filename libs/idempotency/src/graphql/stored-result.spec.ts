import { BadRequestException, HttpException } from '@nestjs/common';
import { UnstorableResponseError } from '../errors/configuration.errors';
import { decodeError, encodeError, isStoredError, statusOfError } from './mutation-errors';
import { decodeResult, encodeResult } from './stored-result';

describe('a stored mutation result', () => {
  it('comes back as the same data, Dates and bigints included, class instances as their fields', () => {
    class Order {
      constructor(
        readonly id: number,
        readonly placedAt: Date,
      ) {}
      get label() {
        return `order ${this.id}`;
      }
    }
    const value = { order: new Order(7, new Date('2026-01-02T03:04:05.678Z')), total: 12n, tags: new Set(['a', 'b']), missing: undefined, none: null };
    const replayed = decodeResult(encodeResult(value, 'Mutation.place'));
    expect(replayed).toEqual({ order: { id: 7, placedAt: new Date('2026-01-02T03:04:05.678Z') }, total: 12n, tags: ['a', 'b'], none: null });
    expect((replayed as { order: { placedAt: unknown } }).order.placedAt).toBeInstanceOf(Date);
    expect(isStoredError(encodeResult(value, 'Mutation.place'))).toBe(false);
  });

  it('keeps a top-level Date, scalars and a shared (not circular) object', () => {
    const shared = { n: 1 };
    expect(decodeResult(encodeResult(new Date(0), 'M.f'))).toEqual(new Date(0));
    expect(decodeResult(encodeResult('text', 'M.f'))).toBe('text');
    expect(decodeResult(encodeResult(undefined, 'M.f'))).toBeUndefined();
    expect(decodeResult(encodeResult({ a: shared, b: shared }, 'M.f'))).toEqual({ a: { n: 1 }, b: { n: 1 } });
  });

  it.each([
    ['a function', { run: () => undefined }, /Mutation\.f returned a function at run, which an idempotent mutation cannot store/],
    [
      'a cycle',
      (() => {
        const a: Record<string, unknown> = {};
        a.self = a;
        return a;
      })(),
      /returned a cycle at self/,
    ],
    ['a stream', { body: { pipe: () => undefined } }, /returned a stream at body/],
  ])('refuses %s, naming the mutation and where', (_name, value, message) => {
    expect(() => encodeResult(value, 'Mutation.f')).toThrow(UnstorableResponseError);
    expect(() => encodeResult(value, 'Mutation.f')).toThrow(message);
  });
});

describe('a stored mutation error', () => {
  it("takes the status of an HttpException, of extensions.http.status, or of Apollo's user error codes; else 500", () => {
    expect(statusOfError(new BadRequestException('no'))).toBe(400);
    expect(statusOfError({ message: 'x', extensions: { http: { status: 409 } } })).toBe(409);
    expect(statusOfError({ message: 'x', extensions: { code: 'BAD_USER_INPUT' } })).toBe(400);
    expect(statusOfError({ message: 'x', extensions: { code: 'SOMETHING' } })).toBe(500);
    expect(statusOfError(new Error('boom'))).toBe(500);
  });

  it('replays an HttpException with its response and status, and another error with its message and extensions', () => {
    const http = decodeError(encodeError(new BadRequestException('No stock'), 400));
    expect(http).toBeInstanceOf(HttpException);
    expect((http as HttpException).getStatus()).toBe(400);
    expect((http as HttpException).getResponse()).toEqual(new BadRequestException('No stock').getResponse());
    expect(http.message).toBe('No stock');
    const user = decodeError(encodeError(Object.assign(new Error('Invalid'), { extensions: { code: 'BAD_USER_INPUT', field: 'label' } }), 400));
    expect(user.message).toBe('Invalid');
    expect((user as Error & { extensions: unknown }).extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'label' });
    expect(isStoredError(encodeError(new Error('x'), 400))).toBe(true);
  });
});
