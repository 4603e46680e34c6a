import { EventVersionInvalidException } from '../errors/idempotency.errors';
import type { EventOrder, EventVersion } from '../route-functions';
import type { IdempotencyRequest } from '../idempotency-request';

/** The resource an event changes and its version as a decimal string, the way the store compares them. */
export interface OrderedEvent {
  resource: string;
  version: string;
}

// Bounded, so that a hostile body cannot make PostgreSQL's numeric overflow (an error, not an answer).
const DECIMAL = /^-?\d{1,100}(\.\d{1,100})?$/;
const MAX_RESOURCE_LENGTH = 255;
// An ISO-8601 date-time, as providers write `updatedAt`: date, time and a zone or none.
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;

/** Reads an event's resource and version; `undefined` when the event names neither (it is not ordered). */
export function orderedEvent<TRequest extends IdempotencyRequest>(order: EventOrder<TRequest>, request: TRequest): OrderedEvent | undefined {
  const resource = order.resource(request);
  const version = order.version(request);
  if (resource === undefined || resource === null || resource === '' || version === undefined || version === null) return undefined;
  const name = String(resource);
  // eslint-disable-next-line no-control-regex
  if ([...name].length > MAX_RESOURCE_LENGTH || /[\u0000-\u001f\u007f]/.test(name)) {
    throw new EventVersionInvalidException(`The event's resource must be at most ${MAX_RESOURCE_LENGTH} characters, without control characters.`);
  }
  return { resource: name, version: toDecimal(version) };
}

/** Dates become epoch milliseconds, so that an ISO string and a `Date` of the same moment compare equal. */
export function toDecimal(version: EventVersion): string {
  if (typeof version === 'bigint') return version.toString();
  if (typeof version === 'number') {
    if (Number.isFinite(version)) return Number.isInteger(version) ? BigInt(version).toString() : String(version);
  } else if (version instanceof Date) {
    if (!Number.isNaN(version.getTime())) return String(version.getTime());
  } else if (typeof version === 'string') {
    if (DECIMAL.test(version)) return version;
    const time = ISO_TIME.test(version) ? Date.parse(version) : Number.NaN;
    if (!Number.isNaN(time)) return String(time);
  }
  throw new EventVersionInvalidException('The event version must be a number, a bigint, a Date, or a string holding a decimal number or an ISO-8601 time.');
}
