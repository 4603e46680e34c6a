import { Body, Controller, ForbiddenException, type LoggerService, Post } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { createHash, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DataSource } from 'typeorm';
import { Idempotent } from 'nestjs-idempotency';
import { createSchema, dropSchema } from '../support/database';
import { Effect } from '../support/effects.controller';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { type Reply, send } from '../support/http';

interface Work {
  label: string;
  eventId?: string;
  tenant?: string;
}

interface BodyRequest {
  body: Work;
  headers: Record<string, string | undefined>;
}

@Controller('k')
class KeysController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  private async effect(work: Work) {
    const saved = await this.dataSource.getRepository(Effect).save({ label: work.label });
    return { id: saved.id, label: work.label };
  }

  @Post('header')
  @Idempotent()
  header(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('other-header')
  @Idempotent({ key: { header: 'X-Other' } })
  otherHeader(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('github')
  @Idempotent({ key: 'github' })
  github(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('tenant')
  @Idempotent({ scope: (req: BodyRequest) => req.body.tenant })
  tenant(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('payload')
  @Idempotent({ key: 'payload-hash' })
  payload(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('async-fingerprint')
  @Idempotent({
    fingerprint: async (req: BodyRequest) => {
      await sleep(5);
      return createHash('sha256').update(req.body.label).digest('hex');
    },
  })
  asyncFingerprint(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('async-key')
  @Idempotent({
    key: async (req: BodyRequest) => {
      await sleep(5);
      return req.body.eventId;
    },
    scope: async (req: BodyRequest) => {
      await sleep(5);
      return req.headers['x-tenant'];
    },
  })
  asyncKey(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('throwing-key')
  @Idempotent({
    key: (req: BodyRequest) => (req.body as unknown as { event: { id: string } }).event.id,
  })
  throwingKey(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('rejecting-key')
  @Idempotent({ key: () => Promise.reject(new Error('lookup failed')) })
  rejectingKey(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('forbidden-key')
  @Idempotent({
    key: () => {
      throw new ForbiddenException('not yours');
    },
  })
  forbiddenKey(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('hanging-key')
  @Idempotent({ key: () => new Promise<string>(() => undefined), waitTimeout: '300ms' })
  hangingKey(@Body() work: Work) {
    return this.effect(work);
  }
}

/** A POST whose headers are sent as given: a header with an array value goes out on one line per value. */
function sendRaw(baseUrl: string, path: string, headers: Record<string, string | string[]>, body: unknown): Promise<Reply> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest(
      `${baseUrl}${path}`,
      { method: 'POST', headers: { ...headers, 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(payload)) } },
      (incoming) => {
        const parts: Buffer[] = [];
        incoming.on('data', (part: Buffer) => parts.push(part));
        incoming.on('error', reject);
        incoming.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8');
          const replyHeaders = new Headers();
          for (const [name, value] of Object.entries(incoming.headers)) if (typeof value === 'string') replyHeaders.set(name, value);
          resolve({ status: incoming.statusCode ?? 0, headers: replyHeaders, text, json: <T>() => JSON.parse(text) as T });
        });
      },
    );
    outgoing.on('error', reject);
    outgoing.end(payload);
  });
}

/** Keys, scopes and the functions that find them, on Express and on Fastify. */
describe.each(PLATFORMS)('keys and scopes on %s', (platform) => {
  let schema: string;
  let t: TestApp;
  const warnings: string[] = [];
  const logger: LoggerService = {
    log: () => undefined,
    error: () => undefined,
    warn: (message: unknown) => void warnings.push(String(message)),
  };
  const fresh = () => randomUUID();

  beforeAll(async () => {
    schema = await createSchema(`keys_${platform}`);
    t = await startApp(platform, { schema, controllers: [KeysController], logger });
  });
  afterAll(async () => {
    await t?.close();
    await dropSchema(schema);
  });

  describe('one key per request', () => {
    it('refuses an Idempotency-Key sent on two lines, even with equal values; the one-line retry runs once', async () => {
      const key = fresh();
      const twice = await sendRaw(t.url, '/k/header', { 'idempotency-key': [key, key] }, { label: key });
      expect(twice.status).toBe(400);
      expect(twice.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(twice.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_INVALID' });
      expect(await t.effects(key)).toBe(0);

      expect((await send(t.url, '/k/header', { key, body: { label: key } })).status).toBe(201);
      expect((await send(t.url, '/k/header', { key, body: { label: key } })).headers.get('idempotent-replayed')).toBe('true');
      expect(await t.effects(key)).toBe(1);
    });

    it('keeps a key sent on one line that holds a comma', async () => {
      const key = fresh();
      const reply = await sendRaw(t.url, '/k/header', { 'idempotency-key': `${key}, ${key}` }, { label: key });
      expect(reply.status).toBe(201);
    });

    it('refuses a { header } source or a preset header sent on two lines', async () => {
      const key = fresh();
      const other = await sendRaw(t.url, '/k/other-header', { 'x-other': [key, `${key}-2`] }, { label: key });
      expect(other.status).toBe(400);
      expect(other.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_INVALID' });
      const github = await sendRaw(t.url, '/k/github', { 'x-github-delivery': [key, key] }, { label: key });
      expect(github.status).toBe(400);
      expect(github.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_INVALID' });
      expect(await t.effects(key)).toBe(0);
    });
  });

  describe('scopes are checked like keys', () => {
    it('refuses two tenants given by two different lone surrogates, rather than sharing one record', async () => {
      const key = fresh();
      for (const tenant of ['\\ud800', '\\udc00']) {
        const reply = await send(t.url, '/k/tenant', { key, body: `{"label":"${key}","tenant":"${tenant}"}` });
        expect(reply.status).toBe(400);
        expect(reply.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_INVALID' });
      }
      expect(await t.effects(key)).toBe(0);
    });

    it('answers a NUL in the scope with 400, not 503', async () => {
      const key = fresh();
      const reply = await send(t.url, '/k/tenant', { key, body: `{"label":"${key}","tenant":"a\\u0000b"}` });
      expect(reply.status).toBe(400);
      expect(reply.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_INVALID' });
    });

    it('keeps well-formed tenants apart', async () => {
      const key = fresh();
      expect((await send(t.url, '/k/tenant', { key, body: { label: key, tenant: 'a\uD83D\uDE00' } })).status).toBe(201);
      expect((await send(t.url, '/k/tenant', { key, body: { label: key, tenant: 'b\uD83D\uDE00' } })).status).toBe(201);
      expect(await t.effects(key)).toBe(2);
    });
  });

  it('payload-hash: the same body with another query string is another request, not a 422', async () => {
    const label = fresh();
    expect((await send(t.url, '/k/payload?notify=no', { body: { label } })).status).toBe(201);
    const other = await send(t.url, '/k/payload?notify=yes', { body: { label } });
    expect(other.status).toBe(201);
    expect(other.headers.get('idempotent-replayed')).toBeNull();
    expect((await send(t.url, '/k/payload?notify=yes', { body: { label } })).headers.get('idempotent-replayed')).toBe('true');
    expect(await t.effects(label)).toBe(2);
  });

  describe('key, scope and fingerprint functions that return promises', () => {
    it('awaits an async fingerprint: an identical repeat replays, another body is a 422', async () => {
      const key = fresh();
      expect((await send(t.url, '/k/async-fingerprint', { key, body: { label: key } })).status).toBe(201);
      const repeat = await send(t.url, '/k/async-fingerprint', { key, body: { label: key } });
      expect(repeat.status).toBe(201);
      expect(repeat.headers.get('idempotent-replayed')).toBe('true');
      const reused = await send(t.url, '/k/async-fingerprint', { key, body: { label: `${key}-other` } });
      expect(reused.status).toBe(422);
      expect(await t.effects(key)).toBe(1);
    });

    it('awaits an async key and an async scope', async () => {
      const eventId = fresh();
      const body = { label: eventId, eventId };
      expect((await send(t.url, '/k/async-key', { body, headers: { 'x-tenant': 'a' } })).status).toBe(201);
      const repeat = await send(t.url, '/k/async-key', { body, headers: { 'x-tenant': 'a' } });
      expect(repeat.headers.get('idempotent-replayed')).toBe('true');
      const otherTenant = await send(t.url, '/k/async-key', { body, headers: { 'x-tenant': 'b' } });
      expect(otherTenant.headers.get('idempotent-replayed')).toBeNull();
      expect(await t.effects(eventId)).toBe(2);
    });

    it('answers the retryable 503 when a key function throws or rejects, and warns naming the route', async () => {
      const label = fresh();
      warnings.length = 0;
      const thrown = await send(t.url, '/k/throwing-key', { body: { label } });
      expect(thrown.status).toBe(503);
      expect(thrown.headers.get('retry-after')).toBe('1');
      expect(thrown.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_UNAVAILABLE' });
      expect(warnings.filter((warning) => warning.includes('POST /k/throwing-key'))).toHaveLength(1);
      const rejected = await send(t.url, '/k/rejecting-key', { body: { label } });
      expect(rejected.status).toBe(503);
      expect(rejected.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_UNAVAILABLE' });
      expect(warnings.filter((warning) => warning.includes('POST /k/rejecting-key') && warning.includes('lookup failed'))).toHaveLength(1);
      expect(await t.effects(label)).toBe(0);
    });

    it('answers an HttpException a key function throws as it is', async () => {
      const reply = await send(t.url, '/k/forbidden-key', { body: { label: fresh() } });
      expect(reply.status).toBe(403);
    });

    it('answers 503 IDEMPOTENCY_KEY_UNAVAILABLE with Retry-After when a key function is still pending at waitTimeout', async () => {
      const label = fresh();
      const started = Date.now();
      const reply = await send(t.url, '/k/hanging-key', { body: { label } });
      expect(Date.now() - started).toBeGreaterThanOrEqual(250);
      expect(reply.status).toBe(503);
      expect(reply.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(reply.json()).toMatchObject({ status: 503, code: 'IDEMPOTENCY_KEY_UNAVAILABLE' });
      expect(await t.effects(label)).toBe(0);
    });
  });
});
