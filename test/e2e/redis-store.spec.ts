import { Body, Controller, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import IORedis from 'ioredis';
import type { DataSource } from 'typeorm';
import { Idempotent, IdempotencyConfigurationError, IdempotencyModule } from 'nestjs-idempotency';
import { redisRecordKey } from '../../libs/idempotency/src/storage/redis/redis-record-key';
import { createSchema, dropSchema } from '../support/database';
import { Effect, type Work } from '../support/effects.controller';
import { startApp, type TestApp } from '../support/harness';
import { burst, countBy, send } from '../support/http';
import { REDIS_URL, uniquePrefix } from '../support/redis';
import { TcpProxy } from '../support/tcp-proxy';

/** Lease-mode routes only: the Redis store has no transaction mode. Effects are rows in PostgreSQL. */
@Controller('r')
class RedisRoutesController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  private async effect(work: Work) {
    if (work.ms) await sleep(work.ms);
    if (work.fail) throw new Error('handler failed');
    const saved = await this.dataSource.getRepository(Effect).save({ label: work.label });
    return { id: saved.id, label: work.label };
  }

  @Post('basic')
  @Idempotent()
  basic(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('wait')
  @Idempotent({ onInFlight: 'wait', waitTimeout: '5s' })
  wait(@Body() work: Work) {
    return this.effect(work);
  }

  @Post('lease')
  @Idempotent({ lease: '1s', maxLease: '1s', fingerprint: false })
  lease(@Body() work: Work) {
    return this.effect(work);
  }
}

describe('the Redis store through HTTP', () => {
  let schema: string;
  let prefix: string;
  let proxy: TcpProxy;
  let redis: IORedis;
  let apps: TestApp[];

  beforeAll(async () => {
    schema = await createSchema('redis_store');
    prefix = `${uniquePrefix('redis_store')}:`;
    const target = new URL(REDIS_URL);
    proxy = await TcpProxy.open({ host: target.hostname, port: Number(target.port || 6379) });
    redis = new IORedis(REDIS_URL);
    const options = { store: { type: 'redis' as const, connection: `redis://127.0.0.1:${proxy.port}`, prefix } };
    // One instance first: both run the schema's migrations.
    apps = [await startApp('express', { schema, idempotency: options, controllers: [RedisRoutesController] })];
    apps.push(await startApp('fastify', { schema, idempotency: options, controllers: [RedisRoutesController] }));
  });
  afterAll(async () => {
    for (const app of apps ?? []) await app.close();
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.quit();
    await proxy?.stop();
    await dropSchema(schema);
  });

  it('runs the handler once for 100 simultaneous duplicates spread over two instances', async () => {
    const key = randomUUID();
    const replies = await burst(100, (index) => send(apps[index % 2].url, '/r/basic', { key, body: { label: key, ms: 200 } }));
    const statuses = countBy(replies, (reply) => reply.status);
    expect((statuses[201] ?? 0) + (statuses[409] ?? 0)).toBe(100);
    expect(statuses[409]).toBeGreaterThan(0);
    expect(await apps[0].effects(key)).toBe(1);
    const record = await redis.hgetall(redisRecordKey(prefix, 'POST /r/basic', key));
    expect(record).toMatchObject({ state: 'completed', status: '201', attempts: '1' });
  });

  it("with onInFlight: 'wait', answers every duplicate with the first answer", async () => {
    const key = randomUUID();
    const replies = await burst(50, (index) => send(apps[index % 2].url, '/r/wait', { key, body: { label: key, ms: 200 } }));
    expect(await apps[0].effects(key)).toBe(1);
    expect(new Set(replies.map((reply) => `${reply.status} ${reply.text}`)).size).toBe(1);
    expect(replies.filter((reply) => reply.headers.get('idempotent-replayed') === 'true')).toHaveLength(49);
  });

  it('refuses a reused key with another body (422), and runs again after a failure (500 is not stored)', async () => {
    const key = randomUUID();
    expect((await send(apps[0].url, '/r/basic', { key, body: { label: key } })).status).toBe(201);
    const reused = await send(apps[1].url, '/r/basic', { key, body: { label: `${key}-other` } });
    expect(reused.status).toBe(422);

    const failing = randomUUID();
    expect((await send(apps[0].url, '/r/basic', { key: failing, body: { label: failing, fail: true } })).status).toBe(500);
    expect((await send(apps[1].url, '/r/basic', { key: failing, body: { label: failing } })).status).toBe(201);
    expect(await apps[0].effects(failing)).toBe(1);
  });

  it('hands the key of a handler that outlives its lease to a retry, and fences the late completion', async () => {
    const key = randomUUID();
    const first = send(apps[0].url, '/r/lease', { key, body: { label: key, ms: 2_000 } });
    await sleep(1_300);
    const retry = await send(apps[1].url, '/r/lease', { key, body: { label: key } });
    expect(retry.status).toBe(201);
    expect((await first).status).toBe(201);
    expect(await apps[0].effects(key)).toBe(2);
    const record = await redis.hgetall(redisRecordKey(prefix, 'POST /r/lease', key));
    expect(record).toMatchObject({ state: 'completed', attempts: '2' });
    // The stored answer is the retry's, not the late first attempt's.
    expect(JSON.parse((await send(apps[0].url, '/r/lease', { key, body: { label: key } })).text)).toEqual(JSON.parse(retry.text));
  });

  it('answers 503 within the command timeout when Redis stops answering but the connection stays open', async () => {
    const key = randomUUID();
    proxy.stall();
    const startedAt = Date.now();
    try {
      const answer = await send(apps[0].url, '/r/basic', { key, body: { label: key } });
      expect(answer.status).toBe(503);
      // The module's connection gives up a command after 2 s (and one more try after reconnecting).
      expect(Date.now() - startedAt).toBeLessThan(7_000);
    } finally {
      await proxy.stop();
      await proxy.start();
    }
    expect(await apps[0].effects(key)).toBe(0);
  });

  it('answers 503 with Retry-After while Redis is unreachable, and recovers without a restart', async () => {
    const key = randomUUID();
    await proxy.stop();
    try {
      const answer = await send(apps[0].url, '/r/basic', { key, body: { label: key } });
      expect(answer.status).toBe(503);
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(answer.json()).toMatchObject({ code: 'IDEMPOTENCY_STORE_UNAVAILABLE' });
    } finally {
      await proxy.start();
    }
    expect(await apps[0].effects(key)).toBe(0);
    let status = 0;
    for (let attempt = 0; attempt < 50 && status !== 201; attempt++) {
      status = (await send(apps[0].url, '/r/basic', { key, body: { label: key } })).status;
      if (status !== 201) await sleep(200);
    }
    expect(status).toBe(201);
    expect(await apps[0].effects(key)).toBe(1);
  });
});

describe('an app without TypeORM, on the Redis store', () => {
  const prefix = `${uniquePrefix('redis_only')}:`;
  let runs = 0;

  @Controller()
  class CountingController {
    @Post('count')
    @Idempotent({ onInFlight: 'wait' })
    async count() {
      runs += 1;
      await sleep(100);
      return { runs };
    }
  }

  it('needs no DataSource, and runs a key once', async () => {
    @Module({
      imports: [IdempotencyModule.forRoot({ purgeInterval: 0, store: { type: 'redis', connection: REDIS_URL, prefix } })],
      controllers: [CountingController],
    })
    class RedisOnlyModule {}
    const app = await NestFactory.create(RedisOnlyModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    try {
      const replies = await burst(20, () => send(url, '/count', { key: 'k' }));
      expect(runs).toBe(1);
      expect(new Set(replies.map((reply) => reply.text))).toEqual(new Set(['{"runs":1}']));
    } finally {
      await app.close();
      const redis = new IORedis(REDIS_URL);
      await redis.del(redisRecordKey(prefix, 'POST /count', 'k'));
      await redis.quit();
    }
  });

  it('says what is missing when the default PostgreSQL store has no DataSource', async () => {
    @Module({ imports: [IdempotencyModule.forRoot({ purgeInterval: 0 })], controllers: [CountingController] })
    class NoStoreModule {}
    const error = await NestFactory.create(NoStoreModule, { logger: false, abortOnError: false }).then(
      (app) => app.close().then(() => undefined),
      (failure: unknown) => failure,
    );
    expect(error).toBeInstanceOf(IdempotencyConfigurationError);
    expect((error as Error).message).toMatch(/TypeOrmModule\.forRoot\(\)/);
  });
});
