import type { StoredResponse } from '../storage/idempotency-store';
import { BODYLESS_STATUSES, type CapturedResponse, type ReplacementResponse } from './response-message';

/** Headers replayed with every stored response; `replayHeaders` adds to them. */
export const DEFAULT_REPLAY_HEADERS: readonly string[] = ['content-type', 'location', 'etag', 'last-modified'];

/** Never stored: a replay must not hand one client's session to another. */
const NEVER_STORED = new Set(['set-cookie']);

export const REPLAYED_HEADER = 'idempotent-replayed';

/** Says why the handler did not run for a request that was not a repeat (`stale-event`). */
export const SKIPPED_HEADER = 'idempotent-skipped';

/** The part of a captured response that is stored: status, allow-listed headers and the body bytes. */
export function toStoredResponse(captured: CapturedResponse, allowed: ReadonlySet<string>): StoredResponse {
  return {
    status: captured.status,
    headers: captured.headers.filter(([name]) => allowed.has(name) && !NEVER_STORED.has(name)),
    body: captured.body,
  };
}

/** The stored response as it goes out again: the same status, headers and bytes, plus `Idempotent-Replayed: true`. */
export function toReplay(stored: StoredResponse): ReplacementResponse {
  return {
    status: stored.status,
    headers: [...stored.headers, [REPLAYED_HEADER, 'true']],
    body: BODYLESS_STATUSES.has(stored.status) ? Buffer.alloc(0) : stored.body,
  };
}
