import { parseItem } from 'structured-headers';
import { IdempotencyKeyInvalidException } from '../errors/idempotency.errors';

/**
 * The key in an `Idempotency-Key` style header. The IETF draft sends a Structured Field string
 * (`"abc"`); Stripe's clients send the bare value (`abc`). Both mean the key `abc`.
 */
export function parseIdempotencyKeyHeader(value: string): string {
  if (!value.startsWith('"')) return value;
  let item: ReturnType<typeof parseItem>;
  try {
    item = parseItem(value);
  } catch (error) {
    throw new IdempotencyKeyInvalidException(`The key header is not a valid Structured Field string: ${(error as Error).message}`);
  }
  if (typeof item[0] !== 'string') {
    throw new IdempotencyKeyInvalidException('The key header must be a Structured Field string or a bare value.');
  }
  return item[0];
}
