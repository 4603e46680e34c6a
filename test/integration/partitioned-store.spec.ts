import { Logger, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import {
  CreatePartitionedIdempotencyRecords1763900000010,
  IdempotencyConfigurationError,
  IdempotencyModule,
  IdempotencyService,
  idempotencyMigrations,
  PartitionedTypeOrmIdempotencyStore,
} from 'nestjs-idempotency';
import { type ClaimOutcome, type ClaimRequest } from 'nestjs-idempotency/testing';
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
  /** What a wait that never ends is raced against; it keeps no test run alive. */
  const stillWaitingAfter = (ms: number) => sleep(ms, 'still waiting', { ref: false });
  const statuses = (outcomes: Array<{ status: string }>) =>
    outcomes.reduce<Record<string, number>>((counts, outcome) => ({ ...counts, [outcome.status]: (counts[outcome.status] ?? 0) + 1 }), {});
  const exists = async (name: string) =>
    (await sql<{ found: string | null }>(`SELECT to_regclass($1)::text AS found`, [`"${schema}".${name}`]))[0].found !== null;
  const detachPending = async (name: string) =>
    (
      await sql<{ pending: boolean }>(`SELECT coalesce(bool_or(inhdetachpending), false) AS pending FROM pg_inherits WHERE inhrelid = $1::regclass`, [
        `"${schema}".${name}`,
      ])
    )[0].pending;
  /**
   * Begins a concurrent detach of the partition and cuts it off half-way, as a crash or a timeout would: a
   * transaction that uses the table keeps the detach waiting in its second half, where it is cancelled.
   */
  const cutOffDetach = async (name: string) => {
    const reader = new Client({ connectionString: DATABASE_URL });
    const detacher = new Client({ connectionString: DATABASE_URL });
    await Promise.all([reader.connect(), detacher.connect()]);
    try {
      await reader.query('BEGIN');
      await reader.query(`SELECT count(*) FROM ${table()}`);
      const [{ pid }] = (await detacher.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows;
      const detaching = detacher.query(`ALTER TABLE ${table()} DETACH PARTITION "${schema}".${name} CONCURRENTLY`).catch((error: Error) => error);
      for (let waited = 0; waited < 100 && !(await detachPending(name)); waited++) await sleep(20);
      await sql('SELECT pg_cancel_backend($1)', [pid]);
      expect(await detaching).toBeInstanceOf(Error);
      await reader.query('COMMIT');
      expect(await detachPending(name)).toBe(true);
    } finally {
      await Promise.all([reader.end(), detacher.end()]);
    }
  };
  /** Ends a pending detach by hand, and drops the table. */
  const finalizeAndDrop = async (name: string) => {
    await sql(`ALTER TABLE ${table()} DETACH PARTITION "${schema}".${name} FINALIZE`);
    await sql(`DROP TABLE "${schema}".${name}`);
  };

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

  it('answers a claim in lease mode in flight within a second while a claim in transaction mode holds the key', async () => {
    const key = randomUUID();
    const held = await store.claimInTransaction(request(key), 1000, 10_000);
    if (held.status !== 'claimed') throw new Error('not claimed');
    try {
      const startedAt = performance.now();
      expect(await Promise.race([store.claim(request(key)), stillWaitingAfter(5000)])).toEqual({ status: 'in-flight', retryAfterMs: 1000 });
      expect(performance.now() - startedAt).toBeLessThan(3000);
    } finally {
      await held.claim.rollback();
    }
    expect((await store.claim(request(key))).status).toBe('claimed');
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

    describe('on connections whose dates read back otherwise (DateStyle Postgres, TimeZone Asia/Kolkata)', () => {
      // The zone's abbreviation, IST, is read back as Israel's: a row looked up again by its time as text is not found.
      let odd: DataSource;
      let oddStore: PartitionedTypeOrmIdempotencyStore;
      beforeAll(async () => {
        odd = await new DataSource({
          type: 'postgres',
          url: DATABASE_URL,
          schema,
          extra: { max: 5, options: '-c DateStyle=Postgres -c TimeZone=Asia/Kolkata' },
        }).initialize();
        oddStore = new PartitionedTypeOrmIdempotencyStore(odd, { interval: '1d', ahead: 2 });
      });
      afterAll(() => odd?.destroy());

      it('starts an expired record over in the current partition, and leaves one row', async () => {
        const key = randomUUID();
        await pastRecord(key, 1, { state: 'completed', expires: `now() - interval '1 minute'` });
        expect(await oddStore.claim(request(key))).toMatchObject({ status: 'claimed', attempt: 1, takenOver: false });
        expect(await rowsOf(key)).toEqual([{ partition: `${schema}.${currentPartition()}`, state: 'in_flight', attempts: 1 }]);
      });

      it('takes over an abandoned claim in place, in lease mode and in transaction mode', async () => {
        const key = randomUUID();
        await pastRecord(key, 1, { state: 'in_flight', expires: `now() + interval '1 hour'`, lease: `now() - interval '1 second'` });
        expect(await oddStore.claim(request(key, { leaseMs: 1 }))).toMatchObject({ status: 'claimed', attempt: 2, takenOver: true });
        await sleep(10);
        const inTransaction = await oddStore.claimInTransaction(request(key), 1000, 10_000);
        expect(inTransaction).toMatchObject({ status: 'claimed', attempt: 3, takenOver: true });
        if (inTransaction.status === 'claimed') await inTransaction.claim.complete(response('odd'), 60_000);
        expect(await rowsOf(key)).toEqual([{ partition: `${schema}.${yesterday}`, state: 'completed', attempts: 3 }]);
      });

      it('reads the partitions right, and makes none twice', async () => {
        const before = await partitions();
        await oddStore.preparePartitions();
        expect(await partitions()).toEqual(before);
      });
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

    it('never queues for its lock behind a write in progress on the partition, and drops it on a later run', async () => {
      const partition = await pastPartition(4);
      await pastRecord(randomUUID(), 4, { state: 'completed', expires: `now() - interval '1 minute'` });
      const writer = new Client({ connectionString: DATABASE_URL });
      const watcher = new Client({ connectionString: DATABASE_URL });
      await Promise.all([writer.connect(), watcher.connect()]);
      try {
        // An open transaction that wrote to the table, as a completion in progress: it holds every partition in ROW EXCLUSIVE mode.
        await writer.query('BEGIN');
        await writer.query(`DELETE FROM ${table()} WHERE key = $1`, [randomUUID()]);
        const startedAt = performance.now();
        let purged = false;
        const purging = store.purgeExpired(1000).finally(() => (purged = true));
        // A lock request queued on the partition would hold back every write to it (completions, renewals) behind it.
        let queued = 0;
        let looks = 0;
        while (!purged) {
          const { rows } = await watcher.query<{ waiting: number }>(
            `SELECT count(*)::int AS waiting FROM pg_locks WHERE relation = $1::regclass AND NOT granted`,
            [`"${schema}".${partition}`],
          );
          queued = Math.max(queued, rows[0].waiting);
          looks++;
        }
        expect(await purging).toBe(0);
        expect(looks).toBeGreaterThan(3);
        expect(queued).toBe(0);
        expect(performance.now() - startedAt).toBeLessThan(2000);
        // Meanwhile, claims of other keys go on.
        expect((await store.claim(request(randomUUID()))).status).toBe('claimed');
        expect(await partitions()).toContain(partition);
        await writer.query('COMMIT');
        expect(await store.purgeExpired(1000)).toBe(1);
        expect(await partitions()).not.toContain(partition);
      } finally {
        await Promise.all([writer.end(), watcher.end()]);
      }
    });

    it('keeps a partition whose last record a renewal in progress keeps live past the moment it would have expired', async () => {
      const partition = await pastPartition(8);
      const key = randomUUID();
      const owner = randomUUID();
      await pastRecord(key, 8, { state: 'in_flight', expires: `now() + interval '1 second'`, lease: `now() + interval '1 second'`, owner });
      const renewer = new Client({ connectionString: DATABASE_URL });
      await renewer.connect();
      try {
        // The renewal's statement, in a transaction that has not committed when the record's old expiry passes:
        // a look without a lock then finds every record of the partition expired.
        await renewer.query('BEGIN');
        const renewed = await renewer.query(
          `UPDATE ${table()} SET lease_expires_at = clock_timestamp() + interval '1 hour', expires_at = clock_timestamp() + interval '1 hour'
           WHERE scope = 'POST /p' AND key = $1 AND owner = $2 AND state = 'in_flight' AND expires_at > clock_timestamp()`,
          [key, owner],
        );
        expect(renewed.rowCount).toBe(1);
        await sleep(1200);
        expect(await store.purgeExpired(1000)).toBe(0);
        await renewer.query('COMMIT');
      } finally {
        await renewer.end();
      }
      expect(await partitions()).toContain(partition);
      expect(await detachPending(partition)).toBe(false);
      await store.purgeExpired(1000);
      expect(await store.find('POST /p', key)).toMatchObject({ state: 'in_flight' });
    });

    it('gives up, within seconds, a detach held back by a transaction left open, and finishes it once that transaction ends', async () => {
      const partition = await pastPartition(7);
      await pastRecord(randomUUID(), 7, { state: 'completed', expires: `now() - interval '1 minute'` });
      const idle = new Client({ connectionString: DATABASE_URL });
      await idle.connect();
      const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
      try {
        // A session that read the table and stays idle in its transaction (a psql session, say).
        await idle.query('BEGIN');
        await idle.query(`SELECT count(*) FROM ${table()}`);
        const startedAt = performance.now();
        const purging = store.purgeExpired(1000);
        expect((await store.claim(request(randomUUID()))).status).toBe('claimed');
        expect(await Promise.race([purging, stillWaitingAfter(12_000)])).toBe(0);
        expect(performance.now() - startedAt).toBeLessThan(10_000);
        // The purge left nothing waiting on the server, and claims go on.
        const detaching = await sql(`SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1`, [`%DETACH PARTITION "${schema}".%`]);
        expect(detaching).toEqual([]);
        expect(await detachPending(partition)).toBe(true);
        expect(warn).toHaveBeenCalledWith(expect.stringContaining(`Detaching the partition ${schema}.${partition} of the idempotency records waited 5s`));
        expect((await store.claim(request(randomUUID()))).status).toBe('claimed');
        await idle.query('COMMIT');
      } finally {
        warn.mockRestore();
        await idle.end();
      }
      await store.purgeExpired(1000);
      expect(await exists(partition)).toBe(false);
    });

    it('leaves a pending detach alone, and says so, when the partition holds a live record or its range is not over', async () => {
      const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
      try {
        const live = await pastPartition(9);
        const key = randomUUID();
        await pastRecord(key, 9, { state: 'completed', expires: `now() + interval '1 hour'` });
        await cutOffDetach(live);
        await store.purgeExpired(1000);
        expect(await detachPending(live)).toBe(true);
        expect(await sql(`SELECT count(*)::int AS count FROM "${schema}".${live}`)).toEqual([{ count: 1 }]);
        expect(warn).toHaveBeenCalledWith(expect.stringContaining(`${live} of the idempotency records is pending, but it holds records that have not expired`));
        await finalizeAndDrop(live);

        // The last partition ahead: empty, but its range is not over.
        const ahead = partitionOf(Date.now() + 2 * DAY);
        await cutOffDetach(ahead);
        await store.purgeExpired(1000);
        expect(await detachPending(ahead)).toBe(true);
        expect(warn).toHaveBeenCalledWith(expect.stringContaining(`${ahead} of the idempotency records is pending, but its range is not over`));
        await finalizeAndDrop(ahead);
        await store.preparePartitions();
        expect(await partitions()).toContain(ahead);
      } finally {
        warn.mockRestore();
      }
    });

    it('finishes a concurrent detach that was cut off half-way', async () => {
      const partition = await pastPartition(6);
      await pastRecord(randomUUID(), 6, { state: 'completed', expires: `now() - interval '1 minute'` });
      await cutOffDetach(partition);
      await store.purgeExpired(1000);
      expect(await exists(partition)).toBe(false);
    });

    it('finishes a drop that was cut off between its detach and its drop, and drops no other table of a similar name', async () => {
      // A partition the store made, detached and named as one whose range is long over, as a drop cut off leaves it.
      const ahead = partitionOf(Date.now() + 2 * DAY);
      const leftover = 'idempotency_partitioned_records_p19990101t0000';
      await sql(`ALTER TABLE ${table()} DETACH PARTITION "${schema}".${ahead}`);
      await sql(`ALTER TABLE "${schema}".${ahead} RENAME TO ${leftover}`);
      await sql(`INSERT INTO "${schema}".${leftover} (scope, key, state, expires_at) VALUES ('POST /p', 'left', 'completed', now() - interval '1 minute')`);
      // Tables the store never made, empty: a backup, and one named as a partition.
      const others = ['idempotency_partitioned_records_prod_backup', 'idempotency_partitioned_records_p20000101t0000'];
      for (const other of others) await sql(`CREATE TABLE "${schema}".${other} (LIKE ${table()})`);
      await store.purgeExpired(1000);
      expect(await exists(leftover)).toBe(false);
      for (const other of others) expect(await exists(other)).toBe(true);
      expect(await partitions()).toContain(ahead);
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

  it.each([
    { before: 1, after: 2 },
    { before: 2, after: 1 },
    { before: 1, after: 1.5 },
  ])(
    'leaves no time without a partition, from now to the end of the last one ahead, once the interval goes from $before to $after days',
    async ({ before, after }) => {
      const own = await createSchema('partitioned_interval');
      const source = await new DataSource({
        type: 'postgres',
        url: DATABASE_URL,
        schema: own,
        migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
        migrationsRun: true,
      }).initialize();
      const parent = `"${own}".idempotency_partitioned_records`;
      try {
        // What an instance on the old interval made: three partitions from the new interval's grid point before now.
        // From 1 to 2 days, the old code then found each point of the new grid in a partition and left a day without one.
        const gridPoint = Math.floor(Date.now() / (after * DAY)) * after * DAY;
        for (let index = 0; index < 3; index++) {
          const from = new Date(gridPoint + index * before * DAY).toISOString();
          const to = new Date(gridPoint + (index + 1) * before * DAY).toISOString();
          await sql(`CREATE TABLE "${own}".old_${index} PARTITION OF ${parent} FOR VALUES FROM ('${from}') TO ('${to}')`);
        }
        const changed = new PartitionedTypeOrmIdempotencyStore(source, { interval: `${after * 24}h`, ahead: 2 });
        await changed.preparePartitions();
        // A record every quarter of an hour, from now to the end of the last partition ahead, finds its partition.
        const end = new Date(gridPoint + 3 * after * DAY).toISOString();
        await sql(
          `INSERT INTO ${parent} (scope, key, state, expires_at, created_at)
         SELECT 'POST /p', 'at ' || g, 'completed', now(), g FROM generate_series(now(), $1::timestamptz - interval '1 microsecond', interval '15 minutes') AS g`,
          [end],
        );
        expect((await changed.claim(request(randomUUID()))).status).toBe('claimed');
        const made = await sql(`SELECT count(*)::int AS count FROM pg_inherits WHERE inhparent = $1::regclass`, [parent]);
        await changed.preparePartitions();
        expect(await sql(`SELECT count(*)::int AS count FROM pg_inherits WHERE inhparent = $1::regclass`, [parent])).toEqual(made);
      } finally {
        await source.destroy();
        await dropSchema(own);
      }
    },
  );

  it('refuses a server older than PostgreSQL 14, which cannot detach a partition concurrently', async () => {
    const older = new PartitionedTypeOrmIdempotencyStore(dataSource);
    // The server's answer about its version, as PostgreSQL 13 gives it.
    const query = jest.spyOn(dataSource, 'query').mockResolvedValueOnce([{ version: 130016, name: '13.16' }]);
    try {
      await expect(older.preparePartitions()).rejects.toThrow(IdempotencyConfigurationError);
      await expect(older.purgeExpired(1000)).rejects.toThrow(/needs PostgreSQL 14 or later.*this server is PostgreSQL 13\.16/);
    } finally {
      query.mockRestore();
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
    await expect(NestFactory.createApplicationContext(OtherStoreModule, { logger: false, abortOnError: false })).rejects.toThrow(
      /partitioning applies to the PostgreSQL store/,
    );
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
      const [{ count }] = await sql<{ count: number }>(`SELECT count(*)::int AS count FROM pg_inherits WHERE inhparent = $1::regclass`, [
        `"${own}".idempotency_partitioned_records`,
      ]);
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
