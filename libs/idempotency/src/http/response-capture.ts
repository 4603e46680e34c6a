import type { OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** A response as the framework was about to send it. */
export interface CapturedResponse {
  status: number;
  /** Lower-case names; a repeated header has several entries. */
  headers: Array<[string, string]>;
  body: Buffer;
}

/** What goes out instead of the captured response (when storing it failed in a way the client must see). */
export interface ReplacementResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface ResponseHooks {
  /**
   * Called with the whole response before any byte of it is sent; the response waits until the
   * returned promise settles. A replacement, if returned, is sent in its place.
   */
  beforeSend(response: CapturedResponse): Promise<ReplacementResponse | undefined>;
  /** The handler wrote the body in parts (a stream): it goes out as it is, and cannot be stored. */
  onStream(): void;
  /** The connection closed before the framework ended the response. */
  onClose(): void;
}

type WriteHead = ServerResponse['writeHead'];
type Write = ServerResponse['write'];
type End = ServerResponse['end'];

/**
 * Holds back the end of a Node.js response (Express's `res`, Fastify's `reply.raw`) until `beforeSend`
 * has run. This sees the bytes, status and headers exactly as the framework and the exception filters
 * produced them, so a replay is byte for byte what the first request got; and nothing reaches the
 * client before its record is stored.
 */
export function holdResponse(raw: ServerResponse, hooks: ResponseHooks): void {
  const original = { writeHead: raw.writeHead, write: raw.write, end: raw.end };
  // writeHead(status, [statusMessage], [headers]): kept as given, to be replayed as given.
  let pendingHead: unknown[] | undefined;
  let ended = false;

  const restore = () => {
    raw.writeHead = original.writeHead;
    raw.write = original.write;
    raw.end = original.end;
  };
  const flushHead = () => {
    if (pendingHead) (raw.writeHead as (...args: unknown[]) => ServerResponse)(...pendingHead);
  };

  // Fastify writes the head right before the body; deferring it keeps the status and headers open to change.
  raw.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    pendingHead = args;
    return this;
  } as unknown as WriteHead;

  raw.write = function (this: ServerResponse, ...args: Parameters<Write>) {
    restore();
    flushHead();
    hooks.onStream();
    return raw.write(...args);
  } as Write;

  raw.end = function (this: ServerResponse, ...args: unknown[]) {
    restore();
    ended = true;
    const { chunk, encoding, callback } = endArguments(args);
    const captured: CapturedResponse = {
      status: typeof pendingHead?.[0] === 'number' ? pendingHead[0] : raw.statusCode,
      headers: collectHeaders(raw, pendingHead),
      body: toBuffer(chunk, encoding),
    };
    hooks.beforeSend(captured).then(
      (replacement) => {
        if (!replacement) {
          flushHead();
          raw.end(chunk as string, encoding as BufferEncoding, callback);
          return;
        }
        for (const name of raw.getHeaderNames()) raw.removeHeader(name);
        raw.writeHead(replacement.status, { ...replacement.headers, 'content-length': String(replacement.body.length) });
        raw.end(replacement.body, callback);
      },
      // beforeSend handles its own failures; this is the last resort that keeps the client from hanging.
      (error: unknown) => {
        raw.destroy(error instanceof Error ? error : new Error(String(error)));
      },
    );
    return this;
  } as End;

  raw.once('close', () => {
    if (!ended) hooks.onClose();
  });
}

function endArguments(args: unknown[]): { chunk: unknown; encoding: BufferEncoding | undefined; callback?: () => void } {
  const [first, second, third] = args;
  if (typeof first === 'function') return { chunk: undefined, encoding: undefined, callback: first as () => void };
  if (typeof second === 'function') return { chunk: first, encoding: undefined, callback: second as () => void };
  return { chunk: first, encoding: second as BufferEncoding | undefined, callback: third as (() => void) | undefined };
}

function toBuffer(chunk: unknown, encoding: BufferEncoding | undefined): Buffer {
  if (chunk === undefined || chunk === null) return Buffer.alloc(0);
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding ?? 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk));
}

function collectHeaders(raw: ServerResponse, head: unknown[] | undefined): Array<[string, string]> {
  const headers = new Map<string, string[]>();
  const add = (name: string, value: OutgoingHttpHeader | undefined) => {
    if (value === undefined) return;
    headers.set(name.toLowerCase(), Array.isArray(value) ? value.map(String) : [String(value)]);
  };
  for (const [name, value] of Object.entries(raw.getHeaders())) add(name, value);
  const headArgument = typeof head?.[1] === 'string' ? head[2] : head?.[1];
  if (Array.isArray(headArgument)) {
    for (let i = 0; i + 1 < headArgument.length; i += 2) add(String(headArgument[i]), headArgument[i + 1] as OutgoingHttpHeader);
  } else if (headArgument) {
    for (const [name, value] of Object.entries(headArgument as OutgoingHttpHeaders)) add(name, value);
  }
  return [...headers].flatMap(([name, values]) => values.map((value): [string, string] => [name, value]));
}
