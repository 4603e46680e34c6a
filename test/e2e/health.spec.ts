import { Controller, Get, type INestApplication, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { TypeOrmModule } from '@nestjs/typeorm';
import { IdempotencyModule, idempotencyMigrations } from 'nestjs-idempotency';
import { IdempotencyHealthIndicator, IdempotencyHealthModule } from 'nestjs-idempotency/terminus';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { PLATFORMS } from '../support/harness';
import { send } from '../support/http';
import { TcpProxy } from '../support/tcp-proxy';

/** `expect.any()` is typed `any`; as `unknown` it fits the expected objects without unsafe assignments. */
const anyNumber: unknown = expect.any(Number);

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly idempotency: IdempotencyHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.idempotency.isHealthy()]);
  }
}

interface HealthBody {
  status: string;
  info?: Record<string, { status: string; responseTime?: number; message?: string }>;
  error?: Record<string, { status: string; responseTime?: number; message?: string }>;
}

/** The terminus indicator on a real app whose database goes away (a proxy cut) and comes back. */
describe.each(PLATFORMS)('the idempotency health indicator on %s', (platform) => {
  let schema: string;
  let proxy: TcpProxy;
  let app: INestApplication;
  let url: string;
  const health = async () => {
    const reply = await send(url, '/health', { method: 'GET' });
    return { status: reply.status, body: reply.json<HealthBody>() };
  };

  beforeAll(async () => {
    schema = await createSchema(`health_${platform}`);
    const target = new URL(DATABASE_URL);
    proxy = await TcpProxy.open({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(DATABASE_URL);
    viaProxy.port = String(proxy.port);
    @Module({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: viaProxy.toString(),
          schema,
          migrations: [...idempotencyMigrations],
          migrationsRun: true,
          extra: { connectionTimeoutMillis: 2000 },
        }),
        IdempotencyModule.forRoot({ purgeInterval: 0 }),
        TerminusModule,
        IdempotencyHealthModule,
      ],
      controllers: [HealthController],
    })
    class HealthAppModule {}
    app =
      platform === 'express'
        ? await NestFactory.create(HealthAppModule, { logger: false })
        : await NestFactory.create(HealthAppModule, new FastifyAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  });
  afterAll(async () => {
    await app?.close();
    await proxy?.stop();
    await dropSchema(schema);
  });

  it('is up with the response time, down with the reason while the database is cut, and up again after', async () => {
    const up = await health();
    expect(up.status).toBe(200);
    expect(up.body).toMatchObject({ status: 'ok', info: { idempotency: { status: 'up', responseTime: anyNumber } } });

    await proxy.stop();
    const down = await health();
    expect(down.status).toBe(503);
    // The pool's connections were dropped, and new ones are refused.
    const refused: unknown = expect.stringMatching(/ECONNREFUSED|terminated/);
    expect(down.body).toMatchObject({ status: 'error', error: { idempotency: { status: 'down', message: refused } } });

    await proxy.start();
    const again = await health();
    expect(again.status).toBe(200);
    expect(again.body.info!.idempotency.status).toBe('up');
  });
});
