import ms from 'ms';
import { IdempotencyConfigurationError } from './errors/configuration.errors';

/**
 * A duration: milliseconds as a number, or a string such as `'500ms'`, `'90s'`, `'15m'`, `'24h'`, `'3d'`.
 *
 * @example
 * IdempotencyModule.forRoot({ ttl: '24h', lease: 30_000 })
 */
export type Duration = number | string;

/** Converts a {@link Duration} to milliseconds, or fails with a message that names the option. */
export function toMilliseconds(value: Duration, option: string): number {
  const parsed = typeof value === 'number' ? value : parseString(value);
  if (parsed === undefined || !Number.isFinite(parsed) || parsed < 0) {
    throw new IdempotencyConfigurationError(
      `${option}: ${JSON.stringify(value)} is not a duration. ` +
        `Give milliseconds as a number, or a string such as '500ms', '90s', '15m', '24h' or '3d'.`,
    );
  }
  return Math.round(parsed);
}

function parseString(value: string): number | undefined {
  try {
    return ms(value as ms.StringValue);
  } catch {
    // ms throws on strings it cannot read; the caller reports them with the option's name.
    return undefined;
  }
}

/** The longest a Node.js timer waits: a longer one fires at once. */
export const LONGEST_TIMER_MS = 2 ** 31 - 1;

/**
 * {@link toMilliseconds} for a duration that a timer waits out (a lease, a wait, an interval): past
 * {@link LONGEST_TIMER_MS} (about 24.8 days) Node.js would fire it at once, so such a value is refused.
 */
export function toTimerMilliseconds(value: Duration, option: string): number {
  const parsed = toMilliseconds(value, option);
  if (parsed > LONGEST_TIMER_MS) {
    throw new IdempotencyConfigurationError(
      `${option}: ${JSON.stringify(value)} is longer than a timer can wait (${LONGEST_TIMER_MS} ms, about 24.8 days).`,
    );
  }
  return parsed;
}
