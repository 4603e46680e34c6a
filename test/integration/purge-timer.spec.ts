import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdempotencyModule, idempotencyMigrations } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';

/** The purge timer: a first run within the first interval, then one per interval, never two at once. */
describe('the purge timer', () => {
  let schema: string;

  beforeAll(async () => {
    schema = await createSchema('purge_timer');
  });
  afterAll(async () => {
    await dropSchema(schema);
  });

  it('purges within the first interval after the start, and again each interval', async () => {
    @Module({
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: DATABASE_URL, schema, migrations: [...idempotencyMigrations], migrationsRun: true }),
        IdempotencyModule.forRoot({ purgeInterval: '400ms' }),
      ],
    })
    class TimedPurgeModule {}
    const expired = (label: string) =>
      sql(
        `INSERT INTO "${schema}".idempotency_records (scope, key, state, expires_at)
         SELECT 'timer', $1 || g, 'completed', now() - interval '1 minute' FROM generate_series(1, 50) AS g`,
        [label],
      );
    const count = async () => (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".idempotency_records`))[0].n;

    const app = await NestFactory.createApplicationContext(TimedPurgeModule, { logger: false });
    try {
      await app.init();
      await expired('first-');
      await sleep(1_000);
      expect(await count()).toBe(0);
      await expired('second-');
      await sleep(1_000);
      expect(await count()).toBe(0);
    } finally {
      await app.close();
    }
    // Closed: no run is left scheduled.
    await expired('after-');
    await sleep(900);
    expect(await count()).toBe(50);
  });
});
