import { Body, Controller, type INestApplication, type MiddlewareConsumer, Module, type NestModule, Post, Res } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { TypeOrmModule } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Idempotent, IdempotencyModule, idempotencyMigrations } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { PLATFORMS } from '../support/harness';
import { send } from '../support/http';

const runs = new Map<string, number>();

@Controller('h')
class HeadersController {
  @Post('basic')
  @Idempotent()
  basic(@Body() body: { label: string }) {
    runs.set(body.label, (runs.get(body.label) ?? 0) + 1);
    return { label: body.label };
  }

  @Post('slow')
  @Idempotent()
  async slow(@Body() body: { label: string }) {
    await sleep(500);
    return { label: body.label };
  }

  /** Replays X-Trace, which the middleware sets too: the stored value must win on the replay. */
  @Post('trace')
  @Idempotent({ replayHeaders: ['X-Trace'] })
  trace(@Body() body: { label: string }, @Res({ passthrough: true }) reply: { header(name: string, value: string): unknown }) {
    reply.header('X-Trace', `handler-${body.label}`);
    return { label: body.label };
  }

  /** Too large to store: the library's 500 replaces the answer. */
  @Post('large')
  @Idempotent({ maxResponseBytes: 100 })
  large() {
    return { data: 'x'.repeat(1000) };
  }
}

/** A request id on every response, as request-id middleware sets it. */
function requestId(request: IncomingMessage, response: ServerResponse, next: () => void): void {
  response.setHeader('x-request-id', request.headers['x-request-id'] ?? randomUUID());
  response.setHeader('x-trace', 'middleware');
  next();
}

/** The headers the app sets before the handler (CORS, request ids) stay on replays and the library's own answers. */
describe.each(PLATFORMS)('headers of this response on %s', (platform) => {
  let schema: string;
  let app: INestApplication;
  let url: string;

  beforeAll(async () => {
    schema = await createSchema(`replay_headers_${platform}`);
    @Module({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: DATABASE_URL,
          schema,
          synchronize: false,
          migrations: [...idempotencyMigrations],
          migrationsRun: true,
          extra: { max: 4 },
        }),
        IdempotencyModule.forRoot({ purgeInterval: 0 }),
      ],
      controllers: [HeadersController],
    })
    class HeadersModule implements NestModule {
      configure(consumer: MiddlewareConsumer) {
        consumer.apply(requestId).forRoutes(HeadersController);
      }
    }
    app =
      platform === 'express'
        ? await NestFactory.create(HeadersModule, { logger: false })
        : await NestFactory.create(HeadersModule, new FastifyAdapter(), { logger: false });
    app.enableCors({ origin: '*' });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  afterAll(async () => {
    await app?.close();
    await dropSchema(schema);
  });

  const headers = (requestIdValue: string) => ({ origin: 'https://shop.example', 'x-request-id': requestIdValue });

  it('keeps CORS and this request id on the first answer and on the replay', async () => {
    const key = randomUUID();
    const first = await send(url, '/h/basic', { key, body: { label: key }, headers: headers('first') });
    expect(first.status).toBe(201);
    expect(first.headers.get('access-control-allow-origin')).toBe('*');
    expect(first.headers.get('x-request-id')).toBe('first');

    const replay = await send(url, '/h/basic', { key, body: { label: key }, headers: headers('second') });
    expect(replay.status).toBe(201);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.headers.get('access-control-allow-origin')).toBe('*');
    expect(replay.headers.get('x-request-id')).toBe('second');
    expect(replay.text).toBe(first.text);
    expect(runs.get(key)).toBe(1);
  });

  it('lets a stored header win a clash with one the app set before the handler', async () => {
    const key = randomUUID();
    const first = await send(url, '/h/trace', { key, body: { label: key }, headers: headers('first') });
    expect(first.headers.get('x-trace')).toBe(`handler-${key}`);
    const replay = await send(url, '/h/trace', { key, body: { label: key }, headers: headers('second') });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.headers.get('x-trace')).toBe(`handler-${key}`);
    expect(replay.headers.get('x-request-id')).toBe('second');
  });

  it("keeps them on the library's own answers: 400, 422, 409 and a replaced 500", async () => {
    const missing = await send(url, '/h/basic', { body: { label: 'x' }, headers: headers('missing') });
    expect(missing.status).toBe(400);

    const key = randomUUID();
    await send(url, '/h/basic', { key, body: { label: key }, headers: headers('first') });
    const reused = await send(url, '/h/basic', { key, body: { label: `${key}-other` }, headers: headers('reused') });
    expect(reused.status).toBe(422);

    const running = randomUUID();
    const slow = send(url, '/h/slow', { key: running, body: { label: running }, headers: headers('slow') });
    await sleep(150);
    const inUse = await send(url, '/h/slow', { key: running, body: { label: running }, headers: headers('in-use') });
    expect(inUse.status).toBe(409);
    expect((await slow).status).toBe(201);

    const refused = await send(url, '/h/large', { key: randomUUID(), body: {}, headers: headers('refused') });
    expect(refused.status).toBe(500);

    for (const [answer, id] of [
      [missing, 'missing'],
      [reused, 'reused'],
      [inUse, 'in-use'],
      [refused, 'refused'],
    ] as const) {
      expect(answer.headers.get('access-control-allow-origin')).toBe('*');
      expect(answer.headers.get('x-request-id')).toBe(id);
    }
  });
});
