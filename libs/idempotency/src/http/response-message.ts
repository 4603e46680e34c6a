/** A response as the framework was about to send it. */
export interface CapturedResponse {
  status: number;
  /** Lower-case names; a repeated header has several entries. */
  headers: Array<[string, string]>;
  /** The whole body; or, when it outgrew the limit before it ended, the part written so far. */
  body: Buffer;
  /** The body outgrew the limit: this is not all of it, and it cannot go out as it is. */
  truncated: boolean;
}

/** What goes out instead of the captured response (when it must not go out as it is). */
export interface ReplacementResponse {
  status: number;
  /** Lower-case names; a repeated header has several entries. */
  headers: Array<[string, string]>;
  body: Buffer;
}

/** Statuses whose responses carry no body. */
export const BODYLESS_STATUSES: ReadonlySet<number> = new Set([204, 205, 304]);

/** Whether a response of this status may carry Content-Length (RFC 9110). */
export function hasContentLength(status: number): boolean {
  return status >= 200 && !BODYLESS_STATUSES.has(status);
}
