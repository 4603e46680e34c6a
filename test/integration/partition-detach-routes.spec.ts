import { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { CreatePartitionedIdempotencyRecords1763900000010, idempotencyMigrations, PartitionedTypeOrmIdempotencyStore } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';
import { PGBOUNCER_SETTINGS } from '../support/pgbouncer';
import { describeEachRoute } from '../support/postgres-routes';

/**
 * The partitioned store's purge detaches a partition outside any transaction, with a bound on its wait. Through a
 * PgBouncer in transaction pooling no session setting can carry that bound: each statement may land on another
 * server connection, and a setting stays on its connection for whoever comes next.
 */
describeEachRoute("the partitioned store's detach", (route) => {
  // As many connections as PgBouncer keeps to the server, so that holding them all reaches every one.
  const POOL = PGBOUNCER_SETTINGS.default_pool_size;
  let schema: string;
  let dataSource: DataSource;
  let store: PartitionedTypeOrmIdempotencyStore;
  const table = () => `"${schema}".idempotency_partitioned_records`;

  beforeAll(async () => {
    schema = await createSchema('detach_routes');
    dataSource = await new DataSource({
      type: 'postgres',
      url: route.url,
      schema,
      migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
      migrationsRun: true,
      extra: { max: POOL },
    }).initialize();
    store = new PartitionedTypeOrmIdempotencyStore(dataSource, { interval: '1d', ahead: 2, preparedStatements: route.preparedStatements });
    await store.preparePartitions();
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropSchema(schema);
  });

  /** lock_timeout on every connection of the pool at once: each held in a transaction, so each on a server connection of its own. */
  const lockTimeouts = async () => {
    const runners = Array.from({ length: POOL }, () => dataSource.createQueryRunner());
    try {
      await Promise.all(runners.map((runner) => runner.startTransaction()));
      const rows = await Promise.all(
        runners.map((runner) => runner.query(`SELECT current_setting('lock_timeout') AS value`) as Promise<Array<{ value: string }>>),
      );
      return new Set(rows.map(([row]) => row.value));
    } finally {
      await Promise.all(
        runners.map(async (runner) => {
          await runner.rollbackTransaction();
          await runner.release();
        }),
      );
    }
  };

  it('gives up, within seconds, a detach held back by a transaction left open, and leaves no setting on any connection', async () => {
    // Every connection to the server in use once, as under load.
    expect(await lockTimeouts()).toEqual(new Set(['0']));
    const partition = 'past_7';
    await sql(
      `CREATE TABLE "${schema}".${partition} PARTITION OF ${table()}
       FOR VALUES FROM (date_trunc('day', now(), 'UTC') - interval '7 days') TO (date_trunc('day', now(), 'UTC') - interval '6 days')`,
    );
    const idle = new Client({ connectionString: DATABASE_URL });
    await idle.connect();
    const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      // A session that read the table and stays idle in its transaction holds the detach back.
      await idle.query('BEGIN');
      await idle.query(`SELECT count(*) FROM ${table()}`);
      const purging = store.purgeExpired(1000);
      expect(await Promise.race([purging, sleep(15_000, 'still waiting', { ref: false })])).toBe(0);
      expect(warn).toHaveBeenCalledWith(expect.stringContaining(`Detaching the partition ${schema}.${partition} of the idempotency records waited 5s`));
      expect(await sql(`SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1`, [`%DETACH PARTITION "${schema}".%`])).toEqual([]);
    } finally {
      warn.mockRestore();
      await idle.query('COMMIT');
      await idle.end();
    }
    expect(await lockTimeouts()).toEqual(new Set(['0']));
    // Once that transaction ended, the next purge finishes the detach and drops the partition.
    await store.purgeExpired(1000);
    expect((await sql<{ found: string | null }>(`SELECT to_regclass($1)::text AS found`, [`"${schema}".${partition}`]))[0].found).toBeNull();
  }, 60_000);
});
