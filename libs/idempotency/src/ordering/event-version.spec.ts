import { EventVersionInvalidException } from '../errors/idempotency.errors';
import { orderedEvent, toDecimal } from './event-version';

describe('toDecimal', () => {
  it('keeps numbers, bigints and decimal strings as decimals', () => {
    expect(toDecimal(1_700_000_000)).toBe('1700000000');
    expect(toDecimal(12.5)).toBe('12.5');
    expect(toDecimal(2n ** 70n)).toBe('1180591620717411303424');
    expect(toDecimal('00042')).toBe('00042');
    expect(toDecimal(1e21)).toBe('1000000000000000000000');
  });

  it('turns dates and ISO-8601 times into the same epoch milliseconds', () => {
    const at = new Date('2026-11-23T10:00:00.123Z');
    expect(toDecimal(at)).toBe(String(at.getTime()));
    expect(toDecimal('2026-11-23T10:00:00.123Z')).toBe(String(at.getTime()));
    expect(toDecimal('2026-11-23T11:00:00.123+01:00')).toBe(String(at.getTime()));
  });

  it.each([Number.NaN, Number.POSITIVE_INFINITY, '', 'yesterday', '12abc', '2026-11-23', new Date('nope'), `0.${'9'.repeat(20_000)}`])(
    'refuses %p with a 400',
    (version) => {
      expect(() => toDecimal(version)).toThrow(EventVersionInvalidException);
    },
  );
});

describe('orderedEvent', () => {
  const request = (body: unknown) => ({ method: 'POST', url: '/', headers: {}, body });
  const order = {
    resource: (req: { body?: unknown }) => (req.body as { id?: string }).id,
    version: (req: { body?: unknown }) => (req.body as { v?: number }).v,
  };

  it('reads the resource and version', () => {
    expect(orderedEvent(order, request({ id: 'sub_1', v: 3 }))).toEqual({ resource: 'sub_1', version: '3' });
  });

  it('refuses a resource with control characters or over 255 characters', () => {
    expect(() => orderedEvent(order, request({ id: 'sub\u0000', v: 1 }))).toThrow(EventVersionInvalidException);
    expect(() => orderedEvent(order, request({ id: 'x'.repeat(256), v: 1 }))).toThrow(EventVersionInvalidException);
  });

  it('leaves an event without a resource or a version unordered', () => {
    expect(orderedEvent(order, request({ v: 3 }))).toBeUndefined();
    expect(orderedEvent(order, request({ id: 'sub_1' }))).toBeUndefined();
  });
});
