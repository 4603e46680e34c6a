import { LONGEST_TIMER_MS, toMilliseconds, toTimerMilliseconds } from './duration';
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

describe('toTimerMilliseconds', () => {
  it('reads what a timer can wait, up to about 24.8 days', () => {
    expect(toTimerMilliseconds('24d', 'waitTimeout')).toBe(2_073_600_000);
    expect(toTimerMilliseconds(LONGEST_TIMER_MS, 'waitTimeout')).toBe(LONGEST_TIMER_MS);
  });

  it.each(['25d', '30d', LONGEST_TIMER_MS + 1])('refuses %p, which Node.js would fire at once, naming the option', (value) => {
    expect(() => toTimerMilliseconds(value, 'maxLease')).toThrow(IdempotencyConfigurationError);
    expect(() => toTimerMilliseconds(value, 'maxLease')).toThrow(/^maxLease: .* longer than a timer can wait/);
  });
});
