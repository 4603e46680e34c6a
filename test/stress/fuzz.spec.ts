import fc from 'fast-check';
import { connect } from 'node:net';
import { type ChildApp, startChildApp } from '../support/child-app';
import { createSchema, dropSchema } from '../support/database';
import { createEffectsTable, FULL, scaled } from './load';

/**
 * Requests no client should send, written byte for byte on a socket (so that nothing on the client side
 * cleans them up first): keys in any script, with control characters or huge; duplicated and odd
 * headers; bodies that are invalid JSON, 10 MB, deeply nested or of other content types; any method.
 * The app answers each with one of the documented answers (README, Status codes) or the framework's own 4xx, never a 5xx, and keeps serving.
 */
describe(`fuzzed requests to an idempotent route${FULL ? '' : ' (scaled down)'}`, () => {
  let schema: string;
  let app: ChildApp;
  let port: number;

  beforeAll(async () => {
    schema = await createSchema('stress_fuzz');
    await createEffectsTable(schema);
    app = await startChildApp('stress-app', { SCHEMA: schema, QUIET: '1' });
    port = Number(new URL(app.url).port);
  });
  afterAll(async () => {
    await app?.kill();
    await dropSchema(schema);
  });

  const seen: Record<string, number> = {};
  afterAll(() => {
    if (FULL) console.log(`fuzzed answers: ${JSON.stringify(seen)}`);
  });
  const LIBRARY_CODES = new Set(['IDEMPOTENCY_KEY_MISSING', 'IDEMPOTENCY_KEY_INVALID', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_KEY_IN_USE']);
  const tenMegabytes = Buffer.alloc(10 * 1024 * 1024, '{"a":1}');
  const bytesOf = (described: DescribedBody): Buffer => {
    if (described.json !== undefined) return Buffer.from(described.json);
    if (described.text !== undefined) return Buffer.from(described.text);
    if (described.nestedArrays) return Buffer.from(`${'['.repeat(described.nestedArrays)}${']'.repeat(described.nestedArrays)}`);
    if (described.nestedObjects) return Buffer.from(`${'{"a":'.repeat(described.nestedObjects)}1${'}'.repeat(described.nestedObjects)}`);
    return described.tenMegabytes ? tenMegabytes : Buffer.alloc(0);
  };

  const key = fc.oneof(
    fc.string({ minLength: 1, maxLength: 64 }),
    fc.string({ unit: 'grapheme', minLength: 1, maxLength: 64 }),
    fc.string({ unit: 'binary', maxLength: 64 }),
    // eslint-disable-next-line no-control-regex -- keys made only of control characters are the point
    fc.stringMatching(/^[\x00-\x1f\x7f]{1,8}$/),
    fc.integer({ min: 250, max: 20_000 }).map((length) => 'k'.repeat(length)),
    fc.constantFrom('', ' ', 'a,b', '"quoted"', ':sf-binary:'),
  );
  // Bodies are described, and made in the property, so that a counterexample prints short.
  const body = fc.oneof(
    fc.record({ json: fc.json() }),
    fc.record({ text: fc.string({ unit: 'binary' }) }),
    fc.record({ nestedArrays: fc.integer({ min: 1, max: 60_000 }) }),
    fc.record({ nestedObjects: fc.integer({ min: 1, max: 40_000 }) }),
    fc.constant({ empty: true }),
    fc.constant({ tenMegabytes: true }),
  );
  const request = fc.record({
    method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'QUERY', 'PURGE'),
    keys: fc.array(key, { maxLength: 2 }),
    contentType: fc.option(
      fc.constantFrom(
        'application/json',
        'application/json; charset=utf-16',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/octet-stream',
        '*/*',
      ),
    ),
    extra: fc.array(fc.tuple(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), fc.string({ maxLength: 200 })), { maxLength: 4 }),
    body,
  });

  it('fingerprints a body nested deeper than a recursive serializer can follow (found by the fuzzer: it was a 500)', async () => {
    const nested = { nestedObjects: 15_000 };
    const send = (depth: number) =>
      raw(port, { method: 'POST', keys: ['deep-body'], contentType: 'application/json', extra: [], body: bytesOf({ ...nested, nestedObjects: depth }) });
    expect((await send(15_000)).status).toBe(200);
    const again = await send(15_000);
    expect(again.head).toMatch(/^idempotent-replayed: true$/im);
    expect(again.body).toBe('{"received":"object"}');
    // Past 1,000 levels a body is fingerprinted by its first 1,000: within them, another body is still told apart.
    expect((await send(900)).status).toBe(422);
  });

  it('answers every request without a 5xx, with only the library codes the README lists, and keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(request, async (input) => {
        const reply = await raw(port, { ...input, body: bytesOf(input.body) });
        const code = /"code":"([A-Z_]+)"/.exec(reply.body)?.[1];
        const answer = `${reply.status ?? reply.error ?? 'closed'}${code ? ` ${code}` : ''}`;
        seen[answer] = (seen[answer] ?? 0) + 1;
        if (reply.status === undefined) {
          // The server may close a connection it cannot parse (a header Node refuses): then the next request must work.
          expect(reply.error ?? 'closed without an answer').toMatch(/closed without an answer|ECONNRESET|EPIPE/);
        } else {
          expect(reply.status).toBeLessThan(500);
          if (code?.startsWith('IDEMPOTENCY')) expect(LIBRARY_CODES).toContain(code);
        }
        const control = await raw(port, { method: 'GET', keys: [], contentType: null, extra: [], body: Buffer.alloc(0) }, '/starts');
        expect(control.status).toBe(200);
      }),
      { numRuns: scaled(120, 2000) },
    );
  });
});

interface DescribedBody {
  json?: string;
  text?: string;
  nestedArrays?: number;
  nestedObjects?: number;
  tenMegabytes?: boolean;
  empty?: boolean;
}

interface RawRequest {
  method: string;
  keys: string[];
  contentType: string | null;
  extra: Array<[string, string]>;
  body: Buffer;
}

/** Writes one HTTP/1.1 request as given and reads the answer until the server closes the connection. */
function raw(port: number, input: RawRequest, path = '/fuzz'): Promise<{ status?: number; head: string; body: string; error?: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => reject(new Error(`no answer in 20 s to ${input.method} with ${input.body.length} bytes`)), 20_000);
    const head = [
      `${input.method} ${path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Connection: close',
      ...input.keys.map((key) => `Idempotency-Key: ${key}`),
      ...(input.contentType ? [`Content-Type: ${input.contentType}`] : []),
      ...input.extra.map(([name, value]) => `${name}: ${value}`),
      `Content-Length: ${input.body.length}`,
      '',
      '',
    ].join('\r\n');
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (failure: NodeJS.ErrnoException) => (error = failure.code ?? failure.message));
    socket.on('close', () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString('latin1');
      const status = /^HTTP\/1\.1 (\d{3})/.exec(text)?.[1];
      const end = text.indexOf('\r\n\r\n');
      resolve({ status: status === undefined ? undefined : Number(status), head: text.slice(0, end), body: text.slice(end + 4), error });
    });
    // No half-close after writing: Node's server drops a connection whose client has ended before the answer.
    // "Connection: close" has the server close it once it has answered.
    socket.write(Buffer.concat([Buffer.from(head, 'utf8'), input.body]));
  });
}
