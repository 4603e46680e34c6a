import type { INestApplication } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import { TypeOrmModule } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import request from 'supertest';
import { IdempotencyModule, idempotencyEntities } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { ClassLevelController, Effect, EffectsController } from '../support/effects.controller';

/** Apps built the way Nest's testing docs build them, driven by supertest and by Fastify's inject(). */
describe('Nest testing utilities', () => {
  let schema: string;
  const apps: INestApplication[] = [];

  const build = async (fastify: boolean) => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: DATABASE_URL, schema, entities: [Effect, ...idempotencyEntities], synchronize: true }),
        IdempotencyModule.forRoot({ purgeInterval: 0 }),
      ],
      controllers: [EffectsController, ClassLevelController],
    }).compile();
    const app = fastify ? moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter()) : moduleRef.createNestApplication();
    app.useLogger(false);
    await app.init();
    if (fastify) await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
    apps.push(app);
    return app;
  };

  beforeAll(async () => {
    schema = await createSchema('clients');
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await dropSchema(schema);
  });

  it('replays through supertest on Express (synchronize: true)', async () => {
    const app = await build(false);
    const server = app.getHttpServer() as Server;
    const key = randomUUID();
    const first = await request(server).post('/t/basic').set('Idempotency-Key', key).send({ label: key });
    const second = await request(server).post('/t/basic').set('Idempotency-Key', key).send({ label: key });
    expect(first.status).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.text).toBe(first.text);
    const missing = await request(server).post('/t/basic').send({ label: key });
    expect(missing.status).toBe(400);
    expect(missing.headers['content-type']).toMatch(/^application\/problem\+json/);
  });

  it("replays through Fastify's inject()", async () => {
    const app = (await build(true)) as NestFastifyApplication;
    const key = randomUUID();
    const inject = () => app.inject({ method: 'POST', url: '/t/basic', headers: { 'idempotency-key': key }, payload: { label: key } });
    const first = await inject();
    const second = await inject();
    expect(first.statusCode).toBe(201);
    expect(second.headers['idempotent-replayed']).toBe('true');
    expect(second.body).toBe(first.body);
    const reused = await app.inject({ method: 'POST', url: '/t/basic', headers: { 'idempotency-key': key }, payload: { label: 'other' } });
    expect(reused.statusCode).toBe(422);
    expect(reused.json()).toMatchObject({ code: 'IDEMPOTENCY_KEY_REUSED' });
  });
});
