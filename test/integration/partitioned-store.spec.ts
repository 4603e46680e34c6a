import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import {
  CreatePartitionedIdempotencyRecords1763900000010,
  IdempotencyConfigurationError,
  IdempotencyModule,
  IdempotencyService,
  idempotencyMigrations,
  PartitionedTypeOrmIdempotencyStore,
  type ClaimOutcome,
  type ClaimRequest,
} from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';

const DAY = 86_400_000;

/** The time-partitioned store: exactly-once claims without a unique (scope, key), and partitions dropped whole. */
describe('PartitionedTypeOrmIdempotencyStore', () => {
  let schema: string;
  let dataSource: DataSource;
  let store: PartitionedTypeOrmIdempotencyStore;
  const table = () => `"${schema}".idempotency_partitioned_records`;
  const request = (key: string, overrides: Partial<ClaimRequest> = {}): ClaimRequest => ({
    scope: 'POST /p',
    key,
    fingerprint: 'f1',
    leaseMs: 30_000,
    ttlMs: 60_000,
    ...overrides,
  });
  const response = (text: string) => ({ status: 201, headers: [['content-type', 'text/plain']] as Array<[string, string]>, body: Buffer.from(text) });
  /** The partitions, by the start of their range (UTC midnight of their day), from the catalog. */
  const partitions = async () =>
    (
      await sql<{ name: string }>(
        `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = $1::regclass ORDER BY c.relname`,
        [table()],
      )
    ).map((row) => row.name);
  /** A partition for the day `daysAgo` days before today (UTC), made as an older instance of the store would have. */
  const pastPartition = async (daysAgo: number) => {
    const name = `past_${daysAgo}`;
    await sql(
      `CREATE TABLE "${schema}".${name} PARTITION OF ${table()}
       FOR VALUES FROM (date_trunc('day', now(), 'UTC') - interval '${daysAgo} days') TO (date_trunc('day', now(), 'UTC') - interval '${daysAgo - 1} days')`,
    );
    return name;
  };
  /** A record written `daysAgo` days ago, straight into the table. */
  const pastRecord = (key: string, daysAgo: number, record: { state: 'completed' | 'in_flight'; expires: string; lease?: string; owner?: string }) =>
    sql(
      `INSERT INTO ${table()} (scope, key, state, fingerprint, owner, lease_expires_at, expires_at, response_status, response_headers, response_body, created_at)
       VALUES ('POST /p', $1, $2, 'f1', $3, ${record.lease ?? 'NULL'}, ${record.expires}, 201, '[]', convert_to('old', 'UTF8'),
               date_trunc('day', now(), 'UTC') - $4::int * interval '1 day' + interval '1 hour')`,
      [key, record.state, record.owner ?? randomUUID(), daysAgo],
    );
  const rowsOf = (key: string) =>
    sql<{ partition: string; state: string; attempts: number }>(
      `SELECT tableoid::regclass::text AS partition, state, attempts FROM ${table()} WHERE key = $1 ORDER BY created_at`,
      [key],
    );
  /** The store names a partition by the start of its range, UTC to the minute. */
  const partitionOf = (time: number) => {
    const iso = new Date(Math.floor(time / DAY) * DAY).toISOString();
    return `idempotency_partitioned_records_p${iso.slice(0, 10).replaceAll('-', '')}t0000`;
  };
  const currentPartition = () => partitionOf(Date.now());
  const statuses = (outcomes: Array<{ status: string }>) =>
    outcomes.reduce<Record<string, number>>((counts, outcome) => ({ ...counts, [outcome.status]: (counts[outcome.status] ?? 0) + 1 }), {});

  beforeAll(async () => {
    schema = await createSchema('partitioned');
    dataSource = await new DataSource({
      type: 'postgres',
      url: DATABASE_URL,
      schema,
      migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
      migrationsRun: true,
      extra: { max: 30 },
    }).initialize();
    store = new PartitionedTypeOrmIdempotencyStore(dataSource, { interval: '1d', ahead: 2 });
    await store.preparePartitions();
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropSchema(schema);
  });

  it('makes the current partition and two ahead, named by their start', async () => {
    const names = await partitions();
    for (const days of [0, 1, 2]) expect(names).toContain(partitionOf(Date.now() + days * DAY));
    await store.preparePartitions();
    expect(await partitions()).toEqual(names);
  });

  it('claims, completes, replays and finds a record', async () => {
    const key = randomUUID();
    const first = await store.claim(request(key));
    expect(first).toMatchObject({ status: 'claimed', attempt: 1, takenOver: false });
    if (first.status !== 'claimed') throw new Error('not claimed');
    expect(await store.claim(request(key))).toMatchObject({ status: 'in-flight' });
    expect(await store.renew(first.ref, 30_000)).toBe(true);
    expect(await store.complete(first.ref, response('first'), 60_000)).toBe(true);
    const again = await store.claim(request(key));
    expect(again).toMatchObject({ status: 'completed', response: { status: 201 } });
    expect(again.status === 'completed' && again.response.body.toString()).toBe('first');
    expect(await store.claim(request(key, { fingerprint: 'f2' }))).toEqual({ status: 'fingerprint-mismatch' });
    expect(await store.peek(request(key))).toMatchObject({ status: 'completed' });
    expect(await store.find('POST /p', key)).toMatchObject({ state: 'completed', attempts: 1 });
    expect(await rowsOf(key)).toEqual([{ partition: `${schema}.${currentPartition()}`, state: 'completed', attempts: 1 }]);
  });

  it('gives one claim to 50 concurrent claims of a new key', async () => {
    // Connections opened beforehand, so that the claims really run at the same time.
    await Promise.all(Array.from({ length: 30 }, () => dataSource.query('SELECT pg_sleep(0.05)')));
    const key = randomUUID();
    const outcomes = await Promise.all(Array.from({ length: 50 }, () => store.claim(request(key))));
    expect(statuses(outcomes)).toEqual({ claimed: 1, 'in-flight': 49 });
    expect(await rowsOf(key)).toHaveLength(1);
  });

  describe('across a partition boundary', () => {
    let yesterday: string;
    beforeAll(async () => {
      yesterday = await pastPartition(1);
    });

    it('gives one claim to 50 concurrent claims of a key whose expired record lies in the previous partition, and moves it', async () => {
      const key = randomUUID();
      await pastRecord(key, 1, { state: 'completed', expires: `now() - interval '1 minute'` });
      expect((await rowsOf(key))[0].partition).toBe(`${schema}.${yesterday}`);
      const outcomes = await Promise.all(Array.from({ length: 50 }, () => store.claim(request(key))));
      expect(statuses(outcomes)).toEqual({ claimed: 1, 'in-flight': 49 });
      expect(await rowsOf(key)).toEqual([{ partition: `${schema}.${currentPartition()}`, state: 'in_flight', attempts: 1 }]);
    });

    it('does the same in transaction mode: duplicates wait on the key, then get the answer', async () => {
      const key = randomUUID();
      await pastRecord(key, 1, { state: 'completed', expires: `now() - interval '1 minute'` });
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => store.claimInTransaction(request(key), 300, 10_000)));
      expect(statuses(outcomes)).toEqual({ claimed: 1, 'in-flight': 19 });
      const claimed = outcomes.find((outcome) => outcome.status === 'claimed');
      if (claimed?.status !== 'claimed') throw new Error('not claimed');
      // A duplicate waits on the key's lock, held by the open claim, for its whole wait.
      const waitedFrom = performance.now();
      const waiting = store.claimInTransaction(request(key), 2000, 10_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      await claimed.claim.manager.query(`SELECT 1`);
      await claimed.claim.complete(response('in transaction'), 60_000);
      const answered = await waiting;
      expect(answered).toMatchObject({ status: 'completed' });
      expect(performance.now() - waitedFrom).toBeLessThan(2000);
      expect(await rowsOf(key)).toEqual([{ partition: `${schema}.${currentPartition()}`, state: 'completed', attempts: 1 }]);
    });

    it('takes over an abandoned claim in the previous partition in place, then completes and replays it', async () => {
      const key = randomUUID();
      await pastRecord(key, 1, { state: 'in_flight', expires: `now() + interval '1 hour'`, lease: `now() - interval '1 second'` });
      const outcomes = await Promise.all(Array.from({ length: 20 }, () => store.claim(request(key))));
      expect(statuses(outcomes)).toEqual({ claimed: 1, 'in-flight': 19 });
      const taken = outcomes.find((outcome) => outcome.status === 'claimed') as Extract<ClaimOutcome, { status: 'claimed' }>;
      expect(taken).toMatchObject({ attempt: 2, takenOver: true });
      expect(await store.complete(taken.ref, response('taken over'), 3_600_000)).toBe(true);
      const replay = await store.claim(request(key));
      expect(replay.status === 'completed' && replay.response.body.toString()).toBe('taken over');
      expect(await store.find('POST /p', key)).toMatchObject({ state: 'completed', attempts: 2 });
      expect(await rowsOf(key)).toEqual([{ partition: `${schema}.${yesterday}`, state: 'completed', attempts: 2 }]);
    });

    it('releases a claim in the previous partition', async () => {
      const key = randomUUID();
      const owner = randomUUID();
      await pastRecord(key, 1, { state: 'in_flight', expires: `now() + interval '1 hour'`, lease: `now() + interval '1 minute'`, owner });
      expect(await store.release({ scope: 'POST /p', key, owner })).toBe(true);
      expect(await rowsOf(key)).toEqual([]);
    });
  });

  it('never completes or renews a record that expired: it counts as absent', async () => {
    const key = randomUUID();
    const claimed = await store.claim(request(key));
    if (claimed.status !== 'claimed') throw new Error('not claimed');
    await sql(`UPDATE ${table()} SET expires_at = now() - interval '1 second', lease_expires_at = now() - interval '1 second' WHERE key = $1`, [key]);
    expect(await store.renew(claimed.ref, 30_000)).toBe(false);
    expect(await store.complete(claimed.ref, response('late'), 60_000)).toBe(false);
    expect(await store.find('POST /p', key)).toBeUndefined();
  });

  describe('purge', () => {
    it('drops a past partition only once every record in it has expired, and never the current one', async () => {
      const partition = await pastPartition(3);
      const live = randomUUID();
      await pastRecord(randomUUID(), 3, { state: 'completed', expires: `now() - interval '1 minute'` });
      await pastRecord(live, 3, { state: 'completed', expires: `now() + interval '1 hour'` });
      // An expired record in the current partition: its partition's range is not over.
      const recent = randomUUID();
      const claimed = await store.claim(request(recent, { ttlMs: 1000, leaseMs: 1000 }));
      if (claimed.status !== 'claimed') throw new Error('not claimed');
      await store.complete(claimed.ref, response('short'), 1);

      expect(await store.purgeExpired(1000)).toBe(0);
      expect(await partitions()).toContain(partition);

      await sql(`UPDATE ${table()} SET expires_at = now() - interval '1 second' WHERE key = $1`, [live]);
      expect(await store.purgeExpired(1000)).toBe(2);
      expect(await partitions()).not.toContain(partition);
      expect(await sql(`SELECT to_regclass($1) AS gone`, [`"${schema}".${partition}`])).toEqual([{ gone: null }]);
      expect(await partitions()).toContain(currentPartition());
      expect(await rowsOf(recent)).toHaveLength(1);
    });

    it('never waits behind a write in progress on the partition, and drops it on a later run', async () => {
      const partition = await pastPartition(4);
      const key = randomUUID();
      await pastRecord(key, 4, { state: 'completed', expires: `now() - interval '1 minute'` });
      const writer = new Client({ connectionString: DATABASE_URL });
      await writer.connect();
      try {
        await writer.query('BEGIN');
        await writer.query(`DELETE FROM ${table()} WHERE key = $1`, [randomUUID()]);
        const startedAt = performance.now();
        const purging = store.purgeExpired(1000);
        // Meanwhile, claims of other keys go on.
        await new Promise((resolve) => setTimeout(resolve, 20));
        const claimStartedAt = performance.now();
        expect((await store.claim(request(randomUUID()))).status).toBe('claimed');
        expect(performance.now() - claimStartedAt).toBeLessThan(1000);
        expect(await purging).toBe(0);
        expect(performance.now() - startedAt).toBeLessThan(2000);
        expect(await partitions()).toContain(partition);
        await writer.query('COMMIT');
        expect(await store.purgeExpired(1000)).toBe(1);
        expect(await partitions()).not.toContain(partition);
      } finally {
        await writer.end();
      }
    });

    it('finishes a concurrent detach that was cut off half-way', async () => {
      const partition = await pastPartition(6);
      await pastRecord(randomUUID(), 6, { state: 'completed', expires: `now() - interval '1 minute'` });
      // A transaction that uses the table keeps the detach waiting in its second half, where it is cancelled.
      const reader = new Client({ connectionString: DATABASE_URL });
      const detacher = new Client({ connectionString: DATABASE_URL });
      await Promise.all([reader.connect(), detacher.connect()]);
      try {
        await reader.query('BEGIN');
        await reader.query(`SELECT count(*) FROM ${table()}`);
        const [{ pid }] = (await detacher.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
        const detaching = detacher.query(`ALTER TABLE ${table()} DETACH PARTITION "${schema}".${partition} CONCURRENTLY`).catch((error: Error) => error);
        const pending = async () =>
          (
            await sql<{ pending: boolean }>(`SELECT coalesce(bool_or(inhdetachpending), false) AS pending FROM pg_inherits WHERE inhrelid = $1::regclass`, [
              `"${schema}".${partition}`,
            ])
          )[0].pending;
        for (let waited = 0; waited < 100 && !(await pending()); waited++) await new Promise((resolve) => setTimeout(resolve, 20));
        await sql('SELECT pg_cancel_backend($1)', [pid]);
        expect(await detaching).toBeInstanceOf(Error);
        await reader.query('COMMIT');
        expect(await pending()).toBe(true);
        await store.purgeExpired(1000);
        expect(await sql(`SELECT to_regclass($1) AS gone`, [`"${schema}".${partition}`])).toEqual([{ gone: null }]);
      } finally {
        await Promise.all([reader.end(), detacher.end()]);
      }
    });

    it('finishes a drop that was cut off between its detach and its drop', async () => {
      const partition = await pastPartition(5);
      await pastRecord(randomUUID(), 5, { state: 'completed', expires: `now() - interval '1 minute'` });
      await sql(`ALTER TABLE ${table()} DETACH PARTITION "${schema}".${partition}`);
      await sql(`ALTER TABLE "${schema}".${partition} RENAME TO idempotency_partitioned_records_p19990101t0000`);
      await store.purgeExpired(1000);
      expect(await sql(`SELECT to_regclass($1) AS gone`, [`"${schema}".idempotency_partitioned_records_p19990101t0000`])).toEqual([{ gone: null }]);
    });
  });

  it('makes the partition a claim needs when none takes it (no purge ran for too long)', async () => {
    const current = currentPartition();
    // The current partition is empty of this test's rows; take it away as if it had never been made.
    await sql(`ALTER TABLE ${table()} DETACH PARTITION "${schema}".${current}`);
    await sql(`ALTER TABLE "${schema}".${current} RENAME TO kept_aside`);
    try {
      expect((await store.claim(request(randomUUID()))).status).toBe('claimed');
      expect(await partitions()).toContain(current);
    } finally {
      await sql(`DROP TABLE "${schema}".kept_aside`);
    }
  });

  it('refuses an interval that is not a whole number of minutes', () => {
    expect(() => new PartitionedTypeOrmIdempotencyStore(dataSource, { interval: '90s' })).toThrow(IdempotencyConfigurationError);
    expect(() => new PartitionedTypeOrmIdempotencyStore(dataSource, { ahead: 0 })).toThrow(/ahead/);
  });

  it('says which migration makes its table when the table is missing', async () => {
    const empty = await createSchema('partitioned_missing');
    const bare = await new DataSource({ type: 'postgres', url: DATABASE_URL, schema: empty }).initialize();
    try {
      const missing = new PartitionedTypeOrmIdempotencyStore(bare);
      await expect(missing.preparePartitions()).rejects.toThrow(/CreatePartitionedIdempotencyRecords1763900000010/);
    } finally {
      await bare.destroy();
      await dropSchema(empty);
    }
  });

  it('refuses the partitioning option beside another store', async () => {
    const store = { claim: jest.fn(), peek: jest.fn(), complete: jest.fn(), release: jest.fn(), renew: jest.fn(), find: jest.fn(), purgeExpired: jest.fn() };
    @Module({ imports: [IdempotencyModule.forRoot({ purgeInterval: 0, store, partitioning: { interval: '1d' } })] })
    class OtherStoreModule {}
    await expect(NestFactory.createApplicationContext(OtherStoreModule, { logger: false, abortOnError: false })).rejects.toThrow(/partitioning applies to the PostgreSQL store/);
  });

  it('is the store of IdempotencyModule with the partitioning option, and makes its partitions at start', async () => {
    const own = await createSchema('partitioned_module');
    @Module({
      imports: [
        TypeOrmModule.forRoot({
          type: 'postgres',
          url: DATABASE_URL,
          schema: own,
          migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
          migrationsRun: true,
        }),
        IdempotencyModule.forRoot({ purgeInterval: 0, partitioning: { interval: '6h', ahead: 1 } }),
      ],
    })
    class PartitionedModule {}
    const app = await NestFactory.createApplicationContext(PartitionedModule, { logger: false });
    try {
      const [{ count }] = await sql<{ count: number }>(
        `SELECT count(*)::int AS count FROM pg_inherits WHERE inhparent = $1::regclass`,
        [`"${own}".idempotency_partitioned_records`],
      );
      expect(count).toBe(2);
      const service = app.get(IdempotencyService);
      let runs = 0;
      const run = () => service.run('job-1', () => ++runs, { transaction: true });
      expect(await run()).toBe(1);
      expect(await run()).toBe(1);
      expect(await service.find('job-1')).toMatchObject({ state: 'completed' });
      expect(await sql(`SELECT state FROM "${own}".idempotency_partitioned_records WHERE key = 'job-1'`)).toEqual([{ state: 'completed' }]);
      expect(await sql(`SELECT count(*)::int AS count FROM "${own}".idempotency_records`)).toEqual([{ count: 0 }]);
    } finally {
      await app.close();
      await dropSchema(own);
    }
  });
});
