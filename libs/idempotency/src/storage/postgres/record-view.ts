import type { IdempotencyRecordView } from '../idempotency-store';
import { type ResponseColumns, toResponse } from './claim-row';

/** A record as read for {@link IdempotencyRecordView}: the view's fields under its names, and the response's columns. */
export type RecordViewRow = Omit<IdempotencyRecordView, 'response'> & ResponseColumns;

/**
 * The columns of {@link RecordViewRow}, by name: a prepared `SELECT *` fails once a later migration adds one.
 * Each is named as the view's field, so that the row needs no mapping but its response.
 */
export const RECORD_VIEW_COLUMNS = `scope, key, state, fingerprint, attempts, owner,
  created_at AS "createdAt", completed_at AS "completedAt", lease_expires_at AS "leaseExpiresAt", expires_at AS "expiresAt",
  response_status, response_headers, response_body`;

/** A record as `find()` and the command-line tool show it. */
export function toView(row: RecordViewRow): IdempotencyRecordView {
  const { response_status, response_headers, response_body, ...record } = row;
  return { ...record, response: row.state === 'completed' ? toResponse({ response_status, response_headers, response_body }) : null };
}
