import { IdempotencyKeyInvalidException } from '../errors/idempotency.errors';

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * The rule that keys and scopes share: text without control characters (NUL included), and well-formed
 * Unicode. Throws `IdempotencyKeyInvalidException` naming `what` (`idempotency key`, `idempotency scope`).
 */
export function assertRecordText(value: string, what: string): string {
  if (CONTROL.test(value)) throw new IdempotencyKeyInvalidException(`The ${what} contains control characters.`);
  if (LONE_SURROGATE.test(value)) {
    // Not text: encoded as UTF-8 it would become U+FFFD, and two different values one record.
    throw new IdempotencyKeyInvalidException(`The ${what} is not well-formed Unicode (a lone surrogate).`);
  }
  return value;
}

/** A key or scope part given by a function: strings and numbers are taken, `undefined`/`null` is none. */
export function textOf(value: unknown, what: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  throw new IdempotencyKeyInvalidException(`The ${what} must be a string, not ${typeof value}.`);
}
