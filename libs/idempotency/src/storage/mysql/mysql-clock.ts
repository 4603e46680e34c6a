/**
 * The database's clock, as the MySQL store writes and compares times: UTC, in DATETIME(6) columns.
 *
 * `NOW(6)` and `UTC_TIMESTAMP(6)` are the time the statement began, so a statement that waited for a row lock
 * would decide on a time from before its wait; `SYSDATE(6)` is the time it is evaluated, but in the session's
 * time zone. UTC at the statement's start plus what has passed since is SYSDATE in UTC, whatever the session's
 * zone. (A server started with `--sysdate-is-now` freezes it again at the statement's start.)
 */
export const CLOCK = '(UTC_TIMESTAMP(6) + INTERVAL TIMESTAMPDIFF(MICROSECOND, NOW(6), SYSDATE(6)) MICROSECOND)';

/**
 * The statement's start, in UTC: a bound that stays put while the statement runs, so that an index can be used
 * for it (a condition on SYSDATE() cannot). The purge uses it; rows that expire meanwhile wait for the next batch.
 */
export const STATEMENT_START = 'UTC_TIMESTAMP(6)';

/** A `?` parameter's milliseconds from now, on {@link CLOCK}. */
export const MS_FROM_NOW = `(${CLOCK} + INTERVAL ROUND(? * 1000) MICROSECOND)`;

/** Milliseconds from now to a DATETIME(6) column, never below 0 (`NULL` stays `NULL`). */
export const msUntil = (column: string) => `GREATEST(0, TIMESTAMPDIFF(MICROSECOND, ${CLOCK}, ${column})) / 1000`;

/** A DATETIME(6) column of UTC as milliseconds since the epoch, with no time zone in between. */
export const epochMs = (column: string) => `TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', ${column}) / 1000`;

/** A number as the driver reads it: DECIMAL and BIGINT come as strings. */
export function asNumber(value: string | number | null): number | null {
  return value === null ? null : Number(value);
}
