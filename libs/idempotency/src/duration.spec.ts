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

  it.each(['', 'soon', '-5s', -1, -10, Number.NaN, Number.POSITIVE_INFINITY, 0, '0s', 1.5, '1.5ms'])('refuses %p, naming the option', (value) => {
    expect(() => toMilliseconds(value, 'lease')).toThrow(IdempotencyConfigurationError);
    expect(() => toMilliseconds(value, 'lease')).toThrow(/^lease: .* is not a duration/);
  });

  it.each([
    [0, /0 is not a duration \(it is zero\)/],
    ['0s', /"0s" is not a duration \(it is zero\)/],
    [1.5, /1\.5 is not a duration \(it is not a whole number of milliseconds\)/],
    [-10, /-10 is not a duration \(it is negative\)/],
    [Number.NaN, /NaN is not a duration\. /],
    [Number.POSITIVE_INFINITY, /Infinity is not a duration \(it is not finite\)/],
  ])('says what is wrong with %p', (value, message) => {
    expect(() => toMilliseconds(value, 'ttl')).toThrow(message);
  });

  it('takes 0 where it means "off", and nothing below it', () => {
    expect(toMilliseconds(0, 'purgeInterval', { zeroMeansOff: true })).toBe(0);
    expect(toMilliseconds('0ms', 'purgeInterval', { zeroMeansOff: true })).toBe(0);
    expect(() => toMilliseconds(-1, 'purgeInterval', { zeroMeansOff: true })).toThrow(/or 0 to turn it off/);
    expect(() => toMilliseconds(0.5, 'purgeInterval', { zeroMeansOff: true })).toThrow(IdempotencyConfigurationError);
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
