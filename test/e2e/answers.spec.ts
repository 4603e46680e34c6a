import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { createSchema, dropSchema } from '../support/database';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';

/** Every row of the README's status-code table, on Express and on Fastify. */
describe.each(PLATFORMS)('answers on %s', (platform) => {
  let schema: string;
  let t: TestApp;
  const fresh = () => randomUUID();

  beforeAll(async () => {
    schema = await createSchema(`answers_${platform}`);
    t = await startApp(platform, { schema });
  });
  afterAll(async () => {
    await t?.close();
    await dropSchema(schema);
  });

  it('runs the handler for the first request and stores status, body and headers', async () => {
    const key = fresh();
    const first = await send(t.url, '/t/basic', { key, body: { label: key } });
    expect(first.status).toBe(201);
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(first.json()).toMatchObject({ label: key });
    expect(await t.effects(key)).toBe(1);
  });

  it('replays a finished request byte for byte, with Idempotent-Replayed, without running the handler', async () => {
    const key = fresh();
    const first = await send(t.url, '/t/basic', { key, body: { label: key } });
    const second = await send(t.url, '/t/basic', { key, body: { label: key } });
    expect(second.status).toBe(first.status);
    expect(second.text).toBe(first.text);
    expect(second.headers.get('content-type')).toBe(first.headers.get('content-type'));
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await t.effects(key)).toBe(1);
  });

  it('treats a Structured Field string key and the bare key as the same key', async () => {
    const key = fresh();
    await send(t.url, '/t/basic', { key: `"${key}"`, body: { label: key } });
    const bare = await send(t.url, '/t/basic', { key, body: { label: key } });
    expect(bare.headers.get('idempotent-replayed')).toBe('true');
    expect(await t.effects(key)).toBe(1);
  });

  it('ignores the order of object keys in the body when fingerprinting', async () => {
    const key = fresh();
    await send(t.url, '/t/basic', { key, body: `{"label":"${key}","ms":0}` });
    const reordered = await send(t.url, '/t/basic', { key, body: `{"ms":0,"label":"${key}"}` });
    expect(reordered.headers.get('idempotent-replayed')).toBe('true');
  });

  it('answers 422 IDEMPOTENCY_KEY_REUSED to a repeat with a different body, finished or running', async () => {
    const key = fresh();
    await send(t.url, '/t/basic', { key, body: { label: key } });
    const reused = await send(t.url, '/t/basic', { key, body: { label: `${key}-other` } });
    expect(reused.status).toBe(422);
    expect(reused.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(reused.json()).toMatchObject({ status: 422, code: 'IDEMPOTENCY_KEY_REUSED' });

    const running = fresh();
    const slow = send(t.url, '/t/basic', { key: running, body: { label: running, ms: 400 } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const whileRunning = await send(t.url, '/t/basic', { key: running, body: { label: `${running}-other` } });
    expect(whileRunning.status).toBe(422);
    expect((await slow).status).toBe(201);
    expect(await t.effects(`${key}-other`)).toBe(0);
  });

  it('answers 409 IDEMPOTENCY_KEY_IN_USE with Retry-After while the first request runs (reject)', async () => {
    const key = fresh();
    const slow = send(t.url, '/t/basic', { key, body: { label: key, ms: 500 } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const duplicate = await send(t.url, '/t/basic', { key, body: { label: key, ms: 500 } });
    expect(duplicate.status).toBe(409);
    expect(Number(duplicate.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(duplicate.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(duplicate.json()).toMatchObject({
      status: 409,
      code: 'IDEMPOTENCY_KEY_IN_USE',
      type: expect.any(String) as string,
      title: expect.any(String) as string,
      detail: expect.any(String) as string,
    });
    expect((await slow).status).toBe(201);
    expect(await t.effects(key)).toBe(1);
  });

  it("waits for the first answer with onInFlight: 'wait', and 409s past waitTimeout", async () => {
    const key = fresh();
    const first = send(t.url, '/t/wait', { key, body: { label: key, ms: 400 } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const waited = await send(t.url, '/t/wait', { key, body: { label: key, ms: 400 } });
    expect(waited.status).toBe(201);
    expect(waited.headers.get('idempotent-replayed')).toBe('true');
    expect(waited.text).toBe((await first).text);

    const late = fresh();
    const long = send(t.url, '/t/wait-short', { key: late, body: { label: late, ms: 1500 } });
    await new Promise((resolve) => setTimeout(resolve, 100));
    const timedOut = await send(t.url, '/t/wait-short', { key: late, body: { label: late, ms: 1500 } });
    expect(timedOut.status).toBe(409);
    expect(timedOut.headers.get('retry-after')).toBeTruthy();
    await long;
    expect(await t.effects(late)).toBe(1);
  });

  it('answers 400 IDEMPOTENCY_KEY_MISSING without a key, and runs without idempotency when not required', async () => {
    const label = fresh();
    const missing = await send(t.url, '/t/basic', { body: { label } });
    expect(missing.status).toBe(400);
    expect(missing.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(missing.json()).toMatchObject({ status: 400, code: 'IDEMPOTENCY_KEY_MISSING' });
    expect(await t.effects(label)).toBe(0);

    await send(t.url, '/t/optional', { body: { label } });
    await send(t.url, '/t/optional', { body: { label } });
    expect(await t.effects(label)).toBe(2);
  });

  it.each([
    ['empty', ''],
    ['over 255 characters', 'k'.repeat(256)],
    ['an empty Structured Field string', '""'],
    ['a malformed Structured Field string', '"unterminated'],
    ['a control character inside quotes', '"a\\tb"'],
  ])('answers 400 IDEMPOTENCY_KEY_INVALID to a key that is %s', async (_case, key) => {
    const label = fresh();
    const invalid = await send(t.url, '/t/basic', { key, body: { label } });
    expect(invalid.status).toBe(400);
    expect(invalid.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_INVALID' });
    expect(await t.effects(label)).toBe(0);
  });

  it('accepts a key of exactly 255 characters (quotes not counted)', async () => {
    const key = `"${'k'.repeat(250)}${fresh().slice(0, 5)}"`;
    const label = fresh();
    expect((await send(t.url, '/t/basic', { key, body: { label } })).status).toBe(201);
  });

  it.each([200, 201, 202, 302, 400, 404, 410, 422])('stores and replays a %i answer', async (status) => {
    const key = fresh();
    const first = await send(t.url, '/t/status', { key, body: { label: key, status } });
    const second = await send(t.url, '/t/status', { key, body: { label: key, status } });
    expect(first.status).toBe(status);
    expect(second.status).toBe(status);
    expect(second.text).toBe(first.text);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await t.effects(key)).toBe(1);
  });

  it.each([500, 503, 408, 409, 425, 429, 304])('releases the key after a %i answer: the retry runs again', async (status) => {
    const key = fresh();
    const first = await send(t.url, '/t/status', { key, body: { label: key, status } });
    const second = await send(t.url, '/t/status', { key, body: { label: key, status } });
    expect(first.status).toBe(status);
    expect(second.status).toBe(status);
    expect(second.headers.get('idempotent-replayed')).toBeNull();
    expect(await t.effects(key)).toBe(2);
  });

  it('releases the key when the handler throws a non-HTTP error', async () => {
    const key = fresh();
    expect((await send(t.url, '/t/crash', { key, body: { label: key } })).status).toBe(500);
    expect((await send(t.url, '/t/crash', { key, body: { label: key } })).status).toBe(500);
    expect(await t.effects(key)).toBe(2);
  });

  it('does not store an answer that storeIf refuses', async () => {
    const key = fresh();
    await send(t.url, '/t/store-if', { key, body: { label: key } });
    await send(t.url, '/t/store-if', { key, body: { label: key } });
    expect(await t.effects(key)).toBe(2);
  });

  it('releases the key when the pipes reject the body, so a corrected retry runs', async () => {
    const key = fresh();
    const rejected = await send(t.url, '/t/piped', { key, body: { label: key, invalid: true } });
    expect(rejected.status).toBe(400);
    const corrected = await send(t.url, '/t/piped', { key, body: { label: key } });
    expect(corrected.status).toBe(201);
    expect(await t.effects(key)).toBe(1);
  });

  it('replays text and empty 204 answers as first sent', async () => {
    const key = fresh();
    const text = await send(t.url, '/t/text', { key, body: { label: key } });
    const textAgain = await send(t.url, '/t/text', { key, body: { label: key } });
    expect(textAgain.text).toBe(text.text);
    expect(textAgain.headers.get('content-type')).toBe(text.headers.get('content-type'));

    const empty = fresh();
    const none = await send(t.url, '/t/empty', { key: empty, body: { label: empty } });
    const noneAgain = await send(t.url, '/t/empty', { key: empty, body: { label: empty } });
    expect([none.status, noneAgain.status]).toEqual([204, 204]);
    expect(noneAgain.text).toBe('');
    expect(noneAgain.headers.get('idempotent-replayed')).toBe('true');
    expect(await t.effects(empty)).toBe(1);
  });

  it('replays a Buffer answer byte for byte', async () => {
    const key = fresh();
    const raw = async () => {
      const response = await fetch(`${t.url}/t/buffer`, {
        method: 'POST',
        headers: { 'idempotency-key': key, 'content-type': 'application/json' },
        body: JSON.stringify({ label: key }),
      });
      return {
        type: response.headers.get('content-type'),
        bytes: Buffer.from(await response.arrayBuffer()),
        replayed: response.headers.get('idempotent-replayed'),
      };
    };
    const first = await raw();
    const second = await raw();
    expect(second.replayed).toBe('true');
    expect(second.bytes.equals(first.bytes)).toBe(true);
    expect(second.type).toBe(first.type);
    expect(await t.effects(key)).toBe(1);
  });

  it('replays the allow-listed headers and replayHeaders, never set-cookie', async () => {
    const key = fresh();
    const first = await send(t.url, '/t/headers', { key, body: { label: key } });
    expect(first.headers.get('set-cookie')).toBe('session=secret');
    const replay = await send(t.url, '/t/headers', { key, body: { label: key } });
    const { id } = first.json<{ id: number }>();
    expect(replay.headers.get('location')).toBe(`/t/orders/${id}`);
    expect(replay.headers.get('etag')).toBe(`"${id}"`);
    expect(replay.headers.get('x-custom')).toBe(`kept-${id}`);
    expect(replay.headers.get('x-other')).toBeNull();
    expect(replay.headers.get('set-cookie')).toBeNull();
  });

  it('fails loudly on a streamed response and releases the key', async () => {
    const key = fresh();
    expect((await send(t.url, '/t/stream', { key, body: { label: key } })).status).toBe(500);
    expect((await send(t.url, '/t/stream', { key, body: { label: key } })).status).toBe(500);
    expect(await t.effects(key)).toBe(2);
  });

  it('refuses a response over maxResponseBytes and releases the key', async () => {
    const key = fresh();
    expect((await send(t.url, '/t/large', { key, body: { label: key } })).status).toBe(500);
    expect(await t.service.find(key, { scope: 'POST /t/large' })).toBeUndefined();
  });

  it('keeps scopes apart: one key on two routes, or for two tenants, runs twice', async () => {
    const key = fresh();
    await send(t.url, '/t/basic', { key, body: { label: key } });
    const otherRoute = await send(t.url, '/t/nofp', { key, body: { label: key } });
    expect(otherRoute.headers.get('idempotent-replayed')).toBeNull();

    const eventId = fresh();
    const a = await send(t.url, '/t/custom', { body: { label: eventId, eventId }, headers: { 'x-tenant': 'a' } });
    const b = await send(t.url, '/t/custom', { body: { label: eventId, eventId }, headers: { 'x-tenant': 'b' } });
    const aAgain = await send(t.url, '/t/custom', { body: { label: eventId, eventId }, headers: { 'x-tenant': 'a' } });
    expect([a.status, b.status]).toEqual([201, 201]);
    expect(aAgain.headers.get('idempotent-replayed')).toBe('true');
    expect(await t.effects(eventId)).toBe(2);
  });

  it('reads keys from another header, the payload hash, a preset, and the first source of an array', async () => {
    const id = fresh();
    await send(t.url, '/t/header-x', { body: { label: id }, headers: { 'x-request-id': id } });
    expect((await send(t.url, '/t/header-x', { body: { label: id }, headers: { 'x-request-id': id } })).headers.get('idempotent-replayed')).toBe('true');

    const hashed = fresh();
    await send(t.url, '/t/payload', { body: { label: hashed } });
    expect((await send(t.url, '/t/payload', { body: { label: hashed } })).headers.get('idempotent-replayed')).toBe('true');

    const event = `evt_${fresh()}`;
    await send(t.url, '/t/stripe', { body: { id: event, label: event } });
    expect((await send(t.url, '/t/stripe', { body: { id: event, label: event } })).headers.get('idempotent-replayed')).toBe('true');
    expect((await send(t.url, '/t/stripe', { body: { label: event } })).json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_MISSING' });

    const multi = fresh();
    await send(t.url, '/t/multi', { body: { label: multi } });
    expect((await send(t.url, '/t/multi', { body: { label: multi } })).headers.get('idempotent-replayed')).toBe('true');
    expect(await t.effects(multi)).toBe(1);
  });

  it('skips the fingerprint check with fingerprint: false', async () => {
    const key = fresh();
    await send(t.url, '/t/nofp', { key, body: { label: key } });
    const different = await send(t.url, '/t/nofp', { key, body: { label: `${key}-x` } });
    expect(different.headers.get('idempotent-replayed')).toBe('true');
  });

  it('applies a class-level @Idempotent() to every route of the controller', async () => {
    const key = fresh();
    await send(t.url, '/class-level/a', { key, body: { label: key } });
    await send(t.url, '/class-level/a', { key, body: { label: key } });
    expect(await t.effects(key)).toBe(1);
    expect((await send(t.url, '/class-level/a', { body: { label: key } })).status).toBe(400);
  });

  it('answers 500 and releases the key when a header cannot be sent, without hanging', async () => {
    const key = fresh();
    const first = await send(t.url, '/t/bad-header', { key, body: { label: key } });
    expect(first.status).toBe(500);
    const retry = await send(t.url, '/t/bad-header', { key, body: { label: key } });
    expect(retry.status).toBe(500);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
  });

  it('sends exactly what it stored when a handler answers twice', async () => {
    const key = fresh();
    const first = await send(t.url, '/t/double', { key, body: { label: key } });
    const replay = await send(t.url, '/t/double', { key, body: { label: key } });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.text).toBe(first.text);
  });

  it('sends the status it stored when the exception filter answers a second time', async () => {
    const key = fresh();
    const first = await send(t.url, '/t/sent-then-thrown', { key, body: { label: key } });
    const replay = await send(t.url, '/t/sent-then-thrown', { key, body: { label: key } });
    expect(first.status).toBe(202);
    expect([replay.status, replay.text]).toEqual([202, first.text]);
  });

  it('answers a whole 500 when a body written in parts outgrows maxResponseBytes', async () => {
    const key = fresh();
    const answer = await send(t.url, '/t/large-written', { key, body: { label: key } });
    expect(answer.status).toBe(500);
    expect(answer.json()).toMatchObject({ statusCode: 500 });
  });

  it('stores a body written in parts on the Node response', async () => {
    const key = fresh();
    const first = await send(t.url, '/t/written', { key, body: { label: key } });
    const replay = await send(t.url, '/t/written', { key, body: { label: key } });
    expect(first.text).toBe('part one, part two');
    expect(replay.text).toBe('part one, part two');
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(await t.effects(key)).toBe(1);
  });

  it('does not hand the key of a handler that took effect to a retry when the client left early', async () => {
    const key = fresh();
    const abort = new AbortController();
    const left = fetch(`${t.url}/t/observable`, {
      method: 'POST',
      signal: abort.signal,
      headers: { 'idempotency-key': key, 'content-type': 'application/json' },
      body: JSON.stringify({ label: key, ms: 300 }),
    }).catch(() => 'left');
    await new Promise((resolve) => setTimeout(resolve, 100));
    abort.abort();
    expect(await left).toBe('left');
    await new Promise((resolve) => setTimeout(resolve, 2000)); // the handler ends, then the grace for a late answer
    expect(await t.effects(key)).toBe(1);
    const retry = await send(t.url, '/t/observable', { key, body: { label: key, ms: 300 } });
    expect(retry.status).toBe(409);
    expect(await t.effects(key)).toBe(1);
  });

  it('tells resources apart: the same key or payload on another path is another request', async () => {
    const key = fresh();
    await send(t.url, '/t/items/1/cancel', { key, body: { label: key } });
    expect((await send(t.url, '/t/items/2/cancel', { key, body: { label: key } })).status).toBe(422);

    const payload = fresh();
    await send(t.url, '/t/items/1/cancel', { body: { label: payload } });
    const other = await send(t.url, '/t/items/2/cancel', { body: { label: payload } });
    expect(other.headers.get('idempotent-replayed')).toBeNull();
    expect(await t.effects(payload)).toBe(2);
  });

  it('warns once about an authenticated route without a scope, and keeps principals apart with one', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      for (let i = 0; i < 2; i++) await send(t.url, '/t/authed', { key: fresh(), body: { label: fresh() } });
      const warnings = warn.mock.calls.filter(([message]) => String(message).includes('POST /t/authed serves authenticated requests'));
      expect(warnings).toHaveLength(1);

      const key = fresh();
      const alice = await send(t.url, '/t/authed-scoped', { key, body: { label: key }, headers: { 'x-user': 'alice' } });
      const bob = await send(t.url, '/t/authed-scoped', { key, body: { label: key }, headers: { 'x-user': 'bob' } });
      expect(bob.headers.get('idempotent-replayed')).toBeNull();
      expect(bob.text).not.toBe(alice.text);
      expect(warn.mock.calls.some(([message]) => String(message).includes('/t/authed-scoped'))).toBe(false);
    } finally {
      warn.mockRestore();
    }
  });

  it('leaves routes without @Idempotent() alone', async () => {
    const response = await send(t.url, '/nowhere', { body: {} });
    expect(response.status).toBe(404);
  });
});
