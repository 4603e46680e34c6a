import ms from 'ms';
import { IdempotencyConfigurationError } from './errors/configuration.errors';

/**
 * A duration: milliseconds as a number, or a string such as `'500ms'`, `'90s'`, `'15m'`, `'24h'`, `'3d'`.
 *
 * @example
 * IdempotencyModule.forRoot({ ttl: '24h', lease: 30_000 })
 */
export type Duration = number | string;

/** How a duration is read beyond the rule that it is a whole, positive, finite number of milliseconds. */
export interface DurationRules {
  /** `0` is taken, and means "off" (as `purgeInterval: 0` does); elsewhere a zero duration is refused. */
  zeroMeansOff?: boolean;
}

/** Converts a {@link Duration} to whole milliseconds, or fails with a message that names the option. */
export function toMilliseconds(value: Duration, option: string, rules: DurationRules = {}): number {
  const parsed = typeof value === 'number' ? value : parseString(value);
  const problem = parsed === undefined ? 'unreadable' : problemOf(parsed, rules);
  if (problem === undefined) return parsed as number;
  throw new IdempotencyConfigurationError(
    `${option}: ${show(value)} is not a duration${problem === 'unreadable' ? '' : ` (${problem})`}. ` +
      `Give a whole, positive number of milliseconds, or a string such as '500ms', '90s', '15m', '24h' or '3d'` +
      `${rules.zeroMeansOff ? ', or 0 to turn it off' : ''}.`,
  );
}

function problemOf(parsed: number, rules: DurationRules): string | undefined {
  if (Number.isNaN(parsed)) return 'unreadable';
  if (!Number.isFinite(parsed)) return 'it is not finite';
  if (parsed < 0) return 'it is negative';
  if (parsed === 0 && !rules.zeroMeansOff) return 'it is zero';
  if (!Number.isInteger(parsed)) return 'it is not a whole number of milliseconds';
  return undefined;
}

function parseString(value: string): number | undefined {
  try {
    return ms(value as ms.StringValue);
  } catch {
    // ms throws on strings it cannot read; the caller reports them with the option's name.
    return undefined;
  }
}

/** `JSON.stringify` shows NaN and Infinity as `null`: numbers are shown as they are. */
function show(value: unknown): string {
  return typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value));
}

/** The longest a Node.js timer waits: a longer one fires at once. */
export const LONGEST_TIMER_MS = 2 ** 31 - 1;

/**
 * {@link toMilliseconds} for a duration that a timer waits out (a lease, a wait, an interval): past
 * {@link LONGEST_TIMER_MS} (about 24.8 days) Node.js would fire it at once, so such a value is refused.
 */
export function toTimerMilliseconds(value: Duration, option: string, rules: DurationRules = {}): number {
  const parsed = toMilliseconds(value, option, rules);
  if (parsed > LONGEST_TIMER_MS) {
    throw new IdempotencyConfigurationError(`${option}: ${show(value)} is longer than a timer can wait (${LONGEST_TIMER_MS} ms, about 24.8 days).`);
  }
  return parsed;
}
