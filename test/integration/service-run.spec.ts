import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { INestApplicationContext } from '@nestjs/common';
import { IdempotencyKeyReusedException, IdempotencyModule, IdempotencyService, idempotencyMigrations } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';

/** IdempotencyService.run() for work outside HTTP (queue consumers, cron jobs, batch items). */
describe('IdempotencyService.run', () => {
  let schema: string;
  let app: INestApplicationContext;
  let service: IdempotencyService;
  const effects = async (label: string) =>
    (await sql<{ count: number }>(`SELECT count(*)::int AS count FROM "${schema}".effects WHERE label = $1`, [label]))[0].count;

  beforeAll(async () => {
    schema = await createSchema('run');
    await sql(`CREATE TABLE "${schema}".effects (id serial PRIMARY KEY, label text NOT NULL)`);
    @Module({
      imports: [
        TypeOrmModule.forRootAsync({
          useFactory: () => ({ type: 'postgres', url: DATABASE_URL, schema, migrations: [...idempotencyMigrations], migrationsRun: true }),
        }),
        IdempotencyModule.forRootAsync({ useFactory: () => ({ purgeInterval: 0, lease: '5s' }) }),
      ],
    })
    class RunModule {}
    app = await NestFactory.createApplicationContext(RunModule, { logger: false });
    service = app.get(IdempotencyService);
  });
  afterAll(async () => {
    await app?.close();
    await dropSchema(schema);
  });

  it('runs fn once for 50 concurrent callers and gives each the first result', async () => {
    const key = randomUUID();
    let calls = 0;
    const results = await Promise.all(
      Array.from({ length: 50 }, () =>
        service.run(key, async () => {
          calls += 1;
          await sleep(100);
          await sql(`INSERT INTO "${schema}".effects (label) VALUES ($1)`, [key]);
          return { receipt: key, at: calls };
        }),
      ),
    );
    expect(calls).toBe(1);
    expect(await effects(key)).toBe(1);
    expect(new Set(results.map((result) => JSON.stringify(result)))).toEqual(new Set([JSON.stringify({ receipt: key, at: 1 })]));
  });

  it('releases the key when fn throws, so the next call runs it', async () => {
    const key = randomUUID();
    await expect(service.run(key, () => Promise.reject(new Error('flaky')))).rejects.toThrow('flaky');
    await expect(service.run(key, () => 'second')).resolves.toBe('second');
    await expect(service.run(key, () => 'third')).resolves.toBe('second');
  });

  it('commits the writes of fn with the record in transaction mode, or neither', async () => {
    const key = randomUUID();
    const write = (fail: boolean) =>
      service.run(
        key,
        async (em) => {
          await em.query(`INSERT INTO "${schema}".effects (label) VALUES ($1)`, [key]);
          if (fail) throw new Error('after the write');
          return 'done';
        },
        { transaction: true, scope: 'jobs' },
      );
    await expect(write(true)).rejects.toThrow('after the write');
    expect(await effects(key)).toBe(0);
    await expect(write(false)).resolves.toBe('done');
    await expect(write(false)).resolves.toBe('done');
    expect(await effects(key)).toBe(1);
    expect(await service.find(key, { scope: 'jobs' })).toMatchObject({ state: 'completed' });
  });

  it.each([false, true])('releases the key when the result cannot be stored (transaction: %s)', async (transaction) => {
    const key = randomUUID();
    const unstorable = () => ({ amount: 1n });
    await expect(service.run(key, unstorable, { transaction, waitTimeout: '200ms' } as { transaction: false })).rejects.toThrow(/BigInt/);
    await expect(service.run(key, () => 'stored', { transaction, waitTimeout: '200ms' } as { transaction: false })).resolves.toBe('stored');
  });

  it('refuses the same key with another fingerprint', async () => {
    const key = randomUUID();
    await service.run(key, () => 1, { fingerprint: 'a' });
    await expect(service.run(key, () => 2, { fingerprint: 'b' })).rejects.toBeInstanceOf(IdempotencyKeyReusedException);
  });
});
