import { toMilliseconds } from './duration';
import { IdempotencyConfigurationError } from './errors/configuration.errors';

describe('toMilliseconds', () => {
  it.each([
    [1500, 1500],
    ['500ms', 500],
    ['90s', 90_000],
    ['15m', 900_000],
    ['24h', 86_400_000],
    ['3d', 259_200_000],
  ])('reads %p as %i ms', (value, expected) => {
    expect(toMilliseconds(value, 'ttl')).toBe(expected);
  });

  it.each(['', 'soon', '-5s', -1, Number.NaN, Number.POSITIVE_INFINITY])('refuses %p, naming the option', (value) => {
    expect(() => toMilliseconds(value, 'lease')).toThrow(IdempotencyConfigurationError);
    expect(() => toMilliseconds(value, 'lease')).toThrow(/^lease: /);
  });
});
