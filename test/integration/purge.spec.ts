import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { INestApplicationContext } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { IDEMPOTENCY_STORE, IdempotencyModule, IdempotencyService, idempotencyMigrations, type IdempotencyStore } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';

/** The purge of the PostgreSQL store: short batches that delete expired records only, and never wait on a claim. */
describe('purging expired records', () => {
  let schema: string;
  let app: INestApplicationContext;
  let store: IdempotencyStore;
  let service: IdempotencyService;
  const table = () => `"${schema}".idempotency_records`;
  const BATCH = 10;

  /** Rows of a kind, under a label of their own: `expires` and `lease` are SQL times. */
  const insert = (label: string, count: number, state: 'completed' | 'in_flight', expires: string, lease = 'NULL') =>
    sql(
      `INSERT INTO ${table()} (scope, key, state, expires_at, lease_expires_at, response_status, response_body)
       SELECT 'purge', $1 || '-' || g, $2, ${expires}, ${lease}, 200, convert_to(repeat('x', 200), 'UTF8') FROM generate_series(1, $3::int) AS g`,
      [label, state, count],
    );
  const left = async (label: string) =>
    (await sql<{ count: number }>(`SELECT count(*)::int AS count FROM ${table()} WHERE key LIKE $1 || '-%'`, [label]))[0].count;

  beforeAll(async () => {
    schema = await createSchema('purge');
    @Module({
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: DATABASE_URL, schema, migrations: [...idempotencyMigrations], migrationsRun: true }),
        IdempotencyModule.forRoot({ purgeInterval: 0, purgeBatchSize: BATCH }),
      ],
    })
    class PurgeModule {}
    app = await NestFactory.createApplicationContext(PurgeModule, { logger: false });
    store = app.get(IDEMPOTENCY_STORE);
    service = app.get(IdempotencyService);
  });
  afterAll(async () => {
    await app?.close();
    await dropSchema(schema);
  });
  beforeEach(() => sql(`DELETE FROM ${table()}`));

  it('deletes expired records in batches, and never a live one or one in flight with a live lease', async () => {
    const label = randomUUID();
    await insert(`${label}-expired`, 25, 'completed', `now() - interval '1 minute'`);
    await insert(`${label}-abandoned`, 5, 'in_flight', `now() - interval '1 minute'`, `now() - interval '2 minutes'`);
    await insert(`${label}-live`, 10, 'completed', `now() + interval '1 hour'`);
    await insert(`${label}-running`, 4, 'in_flight', `now() + interval '1 hour'`, `now() + interval '1 minute'`);
    // Past its expiry but with its lease still running (a lease longer than the TTL): its handler still runs.
    await insert(`${label}-leased`, 3, 'in_flight', `now() - interval '1 minute'`, `now() + interval '1 minute'`);

    const batches: number[] = [];
    const batch = store.purgeExpired.bind(store);
    jest.spyOn(store, 'purgeExpired').mockImplementation(async (size) => {
      const deleted = await batch(size);
      batches.push(deleted);
      return deleted;
    });
    try {
      expect(await service.purgeExpired()).toBe(30);
    } finally {
      jest.restoreAllMocks();
    }
    expect(batches).toEqual([10, 10, 10, 0]);
    expect(await left(`${label}-expired`)).toBe(0);
    expect(await left(`${label}-abandoned`)).toBe(0);
    expect(await left(`${label}-live`)).toBe(10);
    expect(await left(`${label}-running`)).toBe(4);
    expect(await left(`${label}-leased`)).toBe(3);
  });

  it('pauses between batches as long as the batch took', async () => {
    await insert(randomUUID(), 40, 'completed', `now() - interval '1 minute'`);
    const calls: Array<{ start: number; end: number }> = [];
    const batch = store.purgeExpired.bind(store);
    jest.spyOn(store, 'purgeExpired').mockImplementation(async (size) => {
      const start = performance.now();
      try {
        return await batch(size);
      } finally {
        calls.push({ start, end: performance.now() });
      }
    });
    try {
      expect(await service.purgeExpired()).toBe(40);
    } finally {
      jest.restoreAllMocks();
    }
    expect(calls).toHaveLength(5);
    for (let i = 1; i < calls.length; i++) {
      const took = calls[i - 1].end - calls[i - 1].start;
      // Timers fire on whole milliseconds.
      expect(calls[i].start - calls[i - 1].end).toBeGreaterThanOrEqual(took - 2);
    }
  });

  it('skips a row that a claim holds locked, instead of waiting for it, and deletes it on a later run', async () => {
    const label = randomUUID();
    await insert(label, 5, 'completed', `now() - interval '1 minute'`);
    const holder = new Client({ connectionString: DATABASE_URL });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT 1 FROM ${table()} WHERE key = $1 FOR UPDATE`, [`${label}-1`]);
      const startedAt = performance.now();
      expect(await store.purgeExpired(100)).toBe(4);
      expect(performance.now() - startedAt).toBeLessThan(1000);
      expect(await left(label)).toBe(1);
      await holder.query('COMMIT');
      expect(await store.purgeExpired(100)).toBe(1);
    } finally {
      await holder.end();
    }
  });

  it('lets claims of other keys through while a batch runs', async () => {
    // One batch big enough to run for a while on any machine.
    await sql(
      `INSERT INTO ${table()} (scope, key, state, expires_at, response_status, response_body)
       SELECT 'purge', 'bulk-' || g, 'completed', now() - interval '1 minute', 200, convert_to(repeat('x', 200), 'UTF8')
       FROM generate_series(1, 100000) AS g`,
    );
    let batchDone = false;
    let batchEndedAt = 0;
    const startedAt = performance.now();
    const purging = store.purgeExpired(100_000).then((deleted) => {
      batchDone = true;
      batchEndedAt = performance.now();
      return deleted;
    });
    const claims: Array<{ start: number; end: number }> = [];
    while (!batchDone) {
      const start = performance.now();
      const outcome = await store.claim({ scope: 'purge', key: randomUUID(), fingerprint: null, leaseMs: 30_000, ttlMs: 60_000 });
      expect(outcome.status).toBe('claimed');
      claims.push({ start, end: performance.now() });
    }
    expect(await purging).toBe(100_000);
    // Every claim that began while the batch ran, including those that ended after it, was answered within half
    // the batch's time: one that waited for the batch would take what was left of it (the first, nearly all of it).
    const batchMs = batchEndedAt - startedAt;
    const during = claims.filter((claim) => claim.start > startedAt + 5 && claim.start < batchEndedAt);
    expect(during.length).toBeGreaterThanOrEqual(3);
    for (const claim of during) expect(claim.end - claim.start).toBeLessThan(batchMs / 2);
  });
});
