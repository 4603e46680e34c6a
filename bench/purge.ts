/**
 * How fast expired records are purged, and what the purge costs the claims that run meanwhile.
 *
 *   npm run bench:purge
 *
 * Fills the records table of a schema of its own with PURGE_ROWS expired records (default 1,000,000; one
 * INSERT ... SELECT generate_series, bodies of PURGE_BODY_BYTES, default 200) and PURGE_LIVE live ones
 * (completed, and in flight with a live lease). Then claims run at a steady rate (PURGE_CLAIM_RATE per second
 * over PURGE_CLAIMERS loops, each a claim and a completion of a new key through the library's store) for
 * PURGE_BASELINE seconds, and go on while `IdempotencyService.purgeExpired()` deletes the expired rows. It
 * reports rows deleted, seconds, rows/s, the claim latency p50/p99/max before and during the purge (same
 * run, same rate), the longest purge batch, and checks that every live record survived.
 *
 * PURGE_STORE=partitioned fills a past partition of the time-partitioned table instead, and the purge drops it;
 * the partition after it holds PURGE_KEPT expired records beside part of the live ones, and must stay.
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { cpus } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import {
  CreatePartitionedIdempotencyRecords1763900000010,
  IDEMPOTENCY_STORE,
  IdempotencyModule,
  IdempotencyService,
  idempotencyMigrations,
  type IdempotencyStore,
} from 'nestjs-idempotency';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const ROWS = Number(process.env.PURGE_ROWS ?? 1_000_000);
const LIVE = Number(process.env.PURGE_LIVE ?? 10_000);
const BODY_BYTES = Number(process.env.PURGE_BODY_BYTES ?? 200);
const CLAIM_RATE = Number(process.env.PURGE_CLAIM_RATE ?? 200);
const CLAIMERS = Number(process.env.PURGE_CLAIMERS ?? 4);
const BASELINE_SECONDS = Number(process.env.PURGE_BASELINE ?? 10);
const BATCH = Number(process.env.PURGE_BATCH ?? 1000); // the default purgeBatchSize;
const PARTITIONED = process.env.PURGE_STORE === 'partitioned';
/** Partitioned: expired records in the partition of yesterday, beside live ones, which keep it from being dropped. */
const KEPT = PARTITIONED ? Number(process.env.PURGE_KEPT ?? 1000) : 0;
const POOL = 10;
const SCOPE = 'POST /orders';
const TTL_MS = 86_400_000;

type Phase = 'warm-up' | 'before' | 'during' | 'after';

interface Sample {
  phase: Phase;
  claimMs: number;
  completeMs: number;
}

async function main(): Promise<void> {
  const schema = `bench_purge_${randomBytes(4).toString('hex')}`;
  const db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
  let app: Awaited<ReturnType<typeof NestFactory.createApplicationContext>> | undefined;
  try {
    await db.query(`CREATE SCHEMA "${schema}"`);

    @Module({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: DATABASE_URL,
          schema,
          migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
          migrationsRun: true,
          extra: { max: POOL },
        }),
        IdempotencyModule.forRoot({ purgeInterval: 0, purgeBatchSize: BATCH, partitioning: PARTITIONED ? { interval: '1d' } : undefined }),
      ],
    })
    class PurgeBenchModule {}
    app = await NestFactory.createApplicationContext(PurgeBenchModule, { logger: ['error', 'warn'] });
    const service = app.get(IdempotencyService);
    const store = app.get<IdempotencyStore>(IDEMPOTENCY_STORE);
    const table = PARTITIONED ? `"${schema}".idempotency_partitioned_records` : `"${schema}".idempotency_records`;

    const filled = await fill(db, schema, table);
    console.error(`filled: ${ROWS.toLocaleString('en')} expired and ${LIVE.toLocaleString('en')} live rows in ${filled.seconds.toFixed(1)} s (${filled.size})`);

    // Each purge batch, timed from the client: an upper bound on how long its row locks were held.
    const batches: number[] = [];
    const purgeBatch = store.purgeExpired.bind(store);
    store.purgeExpired = async (batchSize: number) => {
      const startedAt = performance.now();
      try {
        return await purgeBatch(batchSize);
      } finally {
        batches.push(performance.now() - startedAt);
      }
    };

    const samples: Sample[] = [];
    const failures: string[] = [];
    let phase: Phase = 'warm-up';
    let running = true;
    const claimKeys: string[] = [];
    const claimer = async (offset: number) => {
      const period = (1000 * CLAIMERS) / CLAIM_RATE;
      let next = performance.now() + (offset * period) / CLAIMERS;
      while (running) {
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        // A claimer that fell behind does not burst to catch up: the rate stays what it was meant to be.
        next = Math.max(next + period, performance.now());
        const key = randomUUID();
        const at = phase;
        try {
          const startedAt = performance.now();
          const outcome = await store.claim({ scope: SCOPE, key, fingerprint: fingerprint(key), leaseMs: 30_000, ttlMs: TTL_MS });
          const claimedAt = performance.now();
          if (outcome.status !== 'claimed') throw new Error(`a new key was answered ${outcome.status}`);
          const completed = await store.complete(outcome.ref, { status: 201, headers: [['content-type', 'application/json']], body: body(key) }, TTL_MS);
          if (!completed) throw new Error('a completion was fenced');
          samples.push({ phase: at, claimMs: claimedAt - startedAt, completeMs: performance.now() - claimedAt });
          claimKeys.push(key);
        } catch (error) {
          failures.push(`${at}: ${(error as Error).message}`);
        }
      }
    };
    const claimers = Array.from({ length: CLAIMERS }, (_, index) => claimer(index));

    await sleep(2000);
    phase = 'before';
    await sleep(BASELINE_SECONDS * 1000);
    phase = 'during';
    const walBefore = (await db.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
    const purgeStartedAt = performance.now();
    const deleted = await service.purgeExpired();
    const seconds = (performance.now() - purgeStartedAt) / 1000;
    const wal = (await db.query<{ bytes: string }>('SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint AS bytes', [walBefore])).rows[0].bytes;
    phase = 'after';
    await sleep(1000);
    running = false;
    await Promise.all(claimers);

    const check = await verify(db, table, claimKeys);
    const before = summary(samples, 'before', BASELINE_SECONDS);
    const during = summary(samples, 'during', seconds);
    const results = {
      date: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model,
        node: process.version,
        postgres: (await db.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version,
      },
      settings: {
        store: PARTITIONED ? 'partitioned' : 'plain',
        rows: ROWS,
        live: LIVE,
        kept: KEPT,
        bodyBytes: BODY_BYTES,
        batchSize: BATCH,
        claimRate: CLAIM_RATE,
        claimers: CLAIMERS,
        pool: POOL,
      },
      purge: {
        deleted,
        seconds,
        rowsPerSecond: deleted / seconds,
        batches: batches.length,
        longestBatchMs: Math.max(...batches),
        batchP50Ms: percentile(batches, 0.5),
        batchP99Ms: percentile(batches, 0.99),
        walMegabytes: Number(wal) / 1024 / 1024,
      },
      claims: { before, during },
      check: { ...check, claimFailures: failures.length, firstFailures: failures.slice(0, 5) },
    };
    print(results);
    console.log(JSON.stringify(results, null, 2));
    if (!check.liveSurvived || !check.keptSurvived || check.expiredLeft > 0 || check.claimsMissing > 0 || failures.length > 0) process.exitCode = 1;
  } finally {
    await app?.close();
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.end();
  }
}

/**
 * The rows: expired ones that expire in the order they were written (as records of one TTL do), a fixed
 * body of BODY_BYTES per row, random keys; then live completed ones and live in-flight ones. VACUUM ANALYZE
 * and a checkpoint afterwards, so that the purge starts from a table in the state autovacuum keeps it in,
 * and the fill's writes are not flushed while it runs.
 */
async function fill(db: Client, schema: string, table: string): Promise<{ seconds: number; size: string }> {
  const startedAt = performance.now();
  // Partitioned: the expired rows were created two days ago (UTC, as the store's partitions are cut), in a
  // partition of their own that the purge drops. Yesterday's partition holds expired rows too, but also live
  // ones: it must stay.
  if (PARTITIONED) {
    await db.query(
      `CREATE TABLE "${schema}".idempotency_partitioned_records_past PARTITION OF ${table}
       FOR VALUES FROM (date_trunc('day', now(), 'UTC') - interval '2 days') TO (date_trunc('day', now(), 'UTC') - interval '1 day')`,
    );
    await db.query(
      `CREATE TABLE "${schema}".idempotency_partitioned_records_kept PARTITION OF ${table}
       FOR VALUES FROM (date_trunc('day', now(), 'UTC') - interval '1 day') TO (date_trunc('day', now(), 'UTC'))`,
    );
  }
  const columns = `scope, key, state, fingerprint, owner, lease_expires_at, expires_at, response_status, response_headers, response_body, created_at, completed_at`;
  const completed = (key: string, expiresAt: string, createdAt: string) => `
    INSERT INTO ${table} (${columns})
    SELECT $1::text, ${key}, 'completed', encode(sha256(g::text::bytea), 'hex'), gen_random_uuid(), NULL, ${expiresAt},
           201, '[["content-type","application/json"]]'::jsonb, convert_to(left(repeat(md5(g::text), $3::int / 32 + 1), $3::int), 'UTF8'),
           ${createdAt}, ${createdAt}
    FROM generate_series(1, $2::int) AS g`;
  const twoDaysAgo = `date_trunc('day', now(), 'UTC') - interval '2 days' + g * interval '1 ms'`;
  const yesterday = `date_trunc('day', now(), 'UTC') - interval '1 day' + g * interval '1 ms'`;
  const expiredCreatedAt = PARTITIONED ? twoDaysAgo : `now() - interval '25 hours' + g * interval '1 ms'`;
  await db.query(completed('gen_random_uuid()::text', `now() - interval '1 hour' + g * (interval '50 minutes' / $2::int)`, expiredCreatedAt), [
    SCOPE,
    ROWS,
    BODY_BYTES,
  ]);
  if (KEPT > 0) await db.query(completed(`'kept-' || g`, `now() - interval '1 hour'`, yesterday), [SCOPE, KEPT, BODY_BYTES]);
  const liveCompleted = Math.ceil(LIVE * 0.9);
  // Partitioned: half the live completed rows in yesterday's partition, the rest in the current one.
  const liveYesterday = PARTITIONED ? Math.floor(liveCompleted / 2) : 0;
  if (liveYesterday > 0) await db.query(completed(`'live-' || g`, `now() + interval '1 day'`, yesterday), [SCOPE, liveYesterday, BODY_BYTES]);
  await db.query(completed(`'live-' || (g + ${liveYesterday})`, `now() + interval '1 day'`, 'now()'), [SCOPE, liveCompleted - liveYesterday, BODY_BYTES]);
  await db.query(
    `INSERT INTO ${table} (${columns})
     SELECT $1::text, 'live-' || g, 'in_flight', encode(sha256(g::text::bytea), 'hex'), gen_random_uuid(), now() + interval '1 hour', now() + interval '1 day',
            NULL, NULL, NULL, now(), NULL
     FROM generate_series($2::int + 1, $3::int) AS g`,
    [SCOPE, liveCompleted, LIVE],
  );
  await db.query(`VACUUM ANALYZE ${table}`);
  await db.query('CHECKPOINT');
  const size = (
    await db.query<{ size: string }>(
      `SELECT pg_size_pretty(coalesce(sum(pg_total_relation_size(relid)), pg_total_relation_size($1::regclass))) AS size FROM pg_partition_tree($1::regclass)`,
      [table],
    )
  ).rows[0].size;
  return { seconds: (performance.now() - startedAt) / 1000, size };
}

/**
 * Every live row is still there, no expired one is (but those beside live ones in a partition, which stays
 * whole), and every key claimed during the run is completed.
 */
async function verify(db: Client, table: string, claimKeys: string[]) {
  const count = async (where: string, values: unknown[] = []) =>
    Number((await db.query<{ count: string }>(`SELECT count(*) FROM ${table} WHERE ${where}`, values)).rows[0].count);
  const live = await count(`key LIKE 'live-%'`);
  const kept = await count(`key LIKE 'kept-%'`);
  const expiredLeft = await count(`expires_at <= now() AND key NOT LIKE 'live-%' AND key NOT LIKE 'kept-%'`);
  const claimed = await count(`key = ANY($1) AND state = 'completed'`, [claimKeys]);
  return { liveSurvived: live === LIVE, live, keptSurvived: kept === KEPT, kept, expiredLeft, claimsMissing: claimKeys.length - claimed };
}

function summary(samples: Sample[], phase: Phase, seconds: number) {
  const of = samples.filter((sample) => sample.phase === phase);
  const claims = of.map((sample) => sample.claimMs);
  const completes = of.map((sample) => sample.completeMs);
  return {
    claims: of.length,
    perSecond: of.length / seconds,
    claimP50Ms: percentile(claims, 0.5),
    claimP99Ms: percentile(claims, 0.99),
    claimMaxMs: Math.max(...claims),
    completeP50Ms: percentile(completes, 0.5),
    completeP99Ms: percentile(completes, 0.99),
    completeMaxMs: Math.max(...completes),
  };
}

function percentile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
}

function fingerprint(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

function body(key: string): Buffer {
  return Buffer.from(JSON.stringify({ id: key, amount: 100, padding: 'x'.repeat(Math.max(0, BODY_BYTES - 60)) }));
}

function print(results: {
  settings: { store: string; batchSize: number; claimRate: number };
  purge: { deleted: number; seconds: number; rowsPerSecond: number; batches: number; longestBatchMs: number; batchP50Ms: number; walMegabytes: number };
  claims: { before: ReturnType<typeof summary>; during: ReturnType<typeof summary> };
  check: { liveSurvived: boolean; live: number; keptSurvived: boolean; kept: number; expiredLeft: number; claimsMissing: number; claimFailures: number };
}): void {
  const { purge, claims, check } = results;
  const ms = (value: number) => value.toFixed(1);
  console.log(
    `\n${results.settings.store} store, batch ${results.settings.batchSize}: purged ${purge.deleted.toLocaleString('en')} rows in ` +
      `${purge.seconds.toFixed(1)} s = ${Math.round(purge.rowsPerSecond).toLocaleString('en')} rows/s; ${purge.batches} batches, ` +
      `longest ${ms(purge.longestBatchMs)} ms, p50 ${ms(purge.batchP50Ms)} ms; WAL ${purge.walMegabytes.toFixed(0)} MB`,
  );
  console.log(`claims at ${results.settings.claimRate}/s   | claims/s | claim p50 | claim p99 | claim max | complete p50 | complete p99`);
  for (const [label, row] of [
    ['before the purge', claims.before],
    ['during the purge', claims.during],
  ] as const) {
    console.log(
      `${label.padEnd(21)}| ${row.perSecond.toFixed(0).padStart(8)} | ${ms(row.claimP50Ms).padStart(9)} | ${ms(row.claimP99Ms).padStart(9)} | ` +
        `${ms(row.claimMaxMs).padStart(9)} | ${ms(row.completeP50Ms).padStart(12)} | ${ms(row.completeP99Ms).padStart(12)}`,
    );
  }
  console.log(
    `check: ${check.live.toLocaleString('en')} live rows survived (${check.liveSurvived ? 'all' : 'NOT ALL'}), ` +
      (KEPT > 0 ? `${check.kept.toLocaleString('en')} expired rows beside live ones kept (${check.keptSurvived ? 'all' : 'NOT ALL'}), ` : '') +
      `${check.expiredLeft} expired left, ` +
      `${check.claimsMissing} claims missing, ${check.claimFailures} claim failures\n`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
