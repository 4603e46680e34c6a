import type { OutgoingHttpHeader, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { headerPairs, type OwnHeaders, withOwnHeaders } from './own-headers';
import { type CapturedResponse, hasContentLength, type ReplacementResponse } from './response-message';

export interface ResponseHooks {
  /**
   * Called once with the whole response (or, past `maxBodyBytes`, what was written of it) before any
   * byte of it is sent; the response waits until the returned promise settles, and a replacement, if
   * returned, is sent in its place; a truncated response must be replaced. Must not reject.
   */
  beforeSend(response: CapturedResponse): Promise<ReplacementResponse | undefined>;
  /** The connection closed before the framework ended the response. */
  onClose(): void;
}

type Callback = (error?: Error | null) => void;

/**
 * Holds back a Node.js response (Express's `res`, Fastify's `reply.raw`) until `beforeSend` has run.
 * This sees the bytes, status and headers exactly as the framework and the exception filters produced
 * them, so a replay is byte for byte what the first request got, and nothing reaches the client before
 * its record is stored.
 *
 * Body parts written before the end are buffered (up to `maxBodyBytes`), the head is deferred, and the
 * first `end()` decides: whatever the app writes after it (a second answer to the same request) is
 * dropped, so the client gets exactly what was stored. A replacement goes out with `ownHeaders`, the
 * headers the app set on this response before the handler (`snapshotHeaders()`).
 */
export function holdResponse(raw: ServerResponse, maxBodyBytes: number, responseHooks: ResponseHooks, ownHeaders: OwnHeaders = []): void {
  // Node's own methods, called on `raw` with .call/.apply below.
  const original = {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with raw as this
    writeHead: raw.writeHead as (...args: unknown[]) => ServerResponse,
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with raw as this
    end: raw.end as (body: Buffer, callback?: Callback) => ServerResponse,
  };
  // writeHead(status, [statusMessage], [headers]): kept as given, to be written as given.
  let pendingHead: unknown[] | undefined;
  const parts: Buffer[] = [];
  let size = 0;
  let state: 'holding' | 'deciding' | 'sent' = 'holding';
  // Let go of once the response is sent: the methods patched below keep this scope alive for as long as Node keeps
  // the response (until its socket has flushed it), and through the hooks the claim, the handler's result and
  // Nest's whole chain would live on with it, long enough for the young generation's GC to copy them out.
  let hooks = responseHooks;

  const dropped = (callback: unknown) => {
    if (typeof callback === 'function') process.nextTick(callback);
  };

  // The status and headers as they were at the first end(): a second answer may change them before the
  // first goes out. getHeaders() returns an object of its own.
  let atEnd = { statusCode: 200, statusMessage: '', headers: {} as ReturnType<ServerResponse['getHeaders']> };
  let body: Buffer = EMPTY;

  const decide = (truncated: boolean) => {
    state = 'deciding';
    atEnd = { statusCode: raw.statusCode, statusMessage: raw.statusMessage, headers: raw.getHeaders() };
    body = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    const captured: CapturedResponse = {
      status: typeof pendingHead?.[0] === 'number' ? pendingHead[0] : raw.statusCode,
      headers: collectHeaders(atEnd.headers, pendingHead),
      body,
      truncated,
    };
    return hooks.beforeSend(captured).then((replacement) => {
      state = 'sent';
      return replacement;
    });
  };

  const send = (replacement: ReplacementResponse | undefined, callback?: Callback) => {
    if (!replacement) {
      // Put back the first answer's status and headers, where a second answer changed them meanwhile.
      raw.statusCode = atEnd.statusCode;
      raw.statusMessage = atEnd.statusMessage;
      if (!sameHeaders(raw.getHeaders(), atEnd.headers)) {
        for (const name of raw.getHeaderNames()) raw.removeHeader(name);
        for (const [name, value] of Object.entries(atEnd.headers)) if (value !== undefined) raw.setHeader(name, value);
      }
      if (pendingHead) original.writeHead.apply(raw, pendingHead);
      // One end() with the whole body: Node corks the socket, so head and body leave in one write.
      original.end.call(raw, body, callback);
    } else {
      for (const name of raw.getHeaderNames()) raw.removeHeader(name);
      writeWhole(raw, withOwnHeaders(replacement, ownHeaders), original, callback);
    }
    hooks = SENT;
    parts.length = 0;
    body = EMPTY;
  };

  const settle = (decision: Promise<ReplacementResponse | undefined>, callback?: Callback) => {
    decision
      .then((replacement) => send(replacement, callback))
      // The last resort: a head or body Node refuses to write must not leave the client hanging.
      .catch((error: unknown) => raw.destroy(error instanceof Error ? error : new Error(String(error))));
  };

  // Fastify writes the head right before the body; deferring it keeps the status and headers open to
  // change. Once the response is being sent, Node's own end() writes the head through here.
  raw.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    if (state === 'sent') return original.writeHead.apply(this, args);
    // Copied: Fastify hands over its own headers object, which a second answer would change.
    if (state === 'holding') pendingHead = args.map((arg) => (typeof arg === 'object' && arg !== null && !Array.isArray(arg) ? { ...arg } : arg));
    return this;
  };

  raw.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    const callback = rest.find((argument) => typeof argument === 'function');
    if (state !== 'holding') {
      dropped(callback);
      return true;
    }
    const part = toBuffer(chunk, typeof rest[0] === 'string' ? (rest[0] as BufferEncoding) : undefined);
    parts.push(part);
    size += part.length;
    // Past the limit it can no longer be stored: decide now rather than buffer without bound.
    if (size > maxBodyBytes) settle(decide(true));
    dropped(callback);
    return true;
  } as ServerResponse['write'];

  raw.end = function (this: ServerResponse, ...args: unknown[]) {
    const { chunk, encoding, callback } = endArguments(args);
    if (state !== 'holding') {
      dropped(callback);
      return this;
    }
    if (chunk !== undefined && chunk !== null) parts.push(toBuffer(chunk, encoding));
    settle(decide(false), callback);
    return this;
  } as ServerResponse['end'];

  raw.once('close', () => {
    if (state === 'holding') hooks.onClose();
  });
}

/**
 * Writes a whole response on a Node response nobody else is answering: the given status, headers and
 * body, with its own Content-Length.
 */
export function writeWhole(
  raw: ServerResponse,
  response: ReplacementResponse,
  methods: { writeHead: (...args: unknown[]) => ServerResponse; end: (body: Buffer, callback?: Callback) => ServerResponse } = {
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with raw as this
    writeHead: raw.writeHead as (...args: unknown[]) => ServerResponse,
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called with raw as this
    end: raw.end as (body: Buffer, callback?: Callback) => ServerResponse,
  },
  callback?: Callback,
): void {
  const headers = response.headers.filter(([name]) => name !== 'content-length');
  if (hasContentLength(response.status)) headers.push(['content-length', String(response.body.length)]);
  methods.writeHead.call(raw, response.status, headers.flat());
  methods.end.call(raw, response.body, callback);
}

function endArguments(args: unknown[]): { chunk: unknown; encoding: BufferEncoding | undefined; callback?: Callback } {
  const [first, second, third] = args;
  if (typeof first === 'function') return { chunk: undefined, encoding: undefined, callback: first as Callback };
  if (typeof second === 'function') return { chunk: first, encoding: undefined, callback: second as Callback };
  return { chunk: first, encoding: second as BufferEncoding | undefined, callback: third as Callback | undefined };
}

const EMPTY = Buffer.alloc(0);

/** The hooks of a response already sent: nothing is left to decide. */
const SENT: ResponseHooks = { beforeSend: () => Promise.resolve(undefined), onClose: () => undefined };

/**
 * A chunk as bytes. Buffers are kept as given, not copied: Node's own write() keeps a reference to the chunk
 * until it is sent, so a writer may not reuse it before then either.
 */
function toBuffer(chunk: unknown, encoding: BufferEncoding | undefined): Buffer {
  if (Buffer.isBuffer(chunk)) return chunk;
  if (typeof chunk === 'string') return Buffer.from(chunk, encoding ?? 'utf8');
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  return Buffer.from(String(chunk));
}

/** Whether two header snapshots (getHeaders()) hold the same names and values. */
function sameHeaders(now: OutgoingHttpHeaders, then: OutgoingHttpHeaders): boolean {
  let count = 0;
  for (const name in now) {
    if (now[name] !== then[name]) return false;
    count++;
  }
  for (const name in then) if (--count < 0 || !(name in now)) return false;
  return count === 0;
}

function collectHeaders(set: OutgoingHttpHeaders, head: unknown[] | undefined): Array<[string, string]> {
  const headArgument = typeof head?.[1] === 'string' ? head[2] : head?.[1];
  // Express sets every header on the response itself; only a head written with headers of its own needs merging.
  if (!headArgument) return headerPairs(set);
  const headers = new Map<string, string[]>();
  const add = (name: string, value: OutgoingHttpHeader | undefined) => {
    if (value === undefined) return;
    headers.set(name.toLowerCase(), Array.isArray(value) ? value.map(String) : [String(value)]);
  };
  for (const name in set) add(name, set[name]);
  if (Array.isArray(headArgument)) {
    for (let i = 0; i + 1 < headArgument.length; i += 2) add(String(headArgument[i]), headArgument[i + 1] as OutgoingHttpHeader);
  } else {
    for (const [name, value] of Object.entries(headArgument as OutgoingHttpHeaders)) add(name, value);
  }
  return [...headers].flatMap(([name, values]) => values.map((value): [string, string] => [name, value]));
}
