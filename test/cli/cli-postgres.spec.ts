import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import {
  CreatePartitionedIdempotencyRecords1763900000010,
  idempotencyKeyHash,
  idempotencyMigrations,
  PartitionedTypeOrmIdempotencyStore,
  TypeOrmIdempotencyStore,
  withEncryptionAtRest,
} from 'nestjs-idempotency';
import { IDEMPOTENCY_PARTITIONED_TABLE } from '../../libs/idempotency/src/storage/postgres/partitioning.options';
import { runBuiltCli } from '../support/cli';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';

const DAY = 86_400_000;

/** `stats --json`, as far as these checks read it. */
interface StatsJson {
  states: Record<string, number>;
  scopeCount: number;
  scopes: unknown[];
  oldestStuck: unknown[];
}

/** A DataSource on `schema` with the tables made by the library's migrations, as an app has it. */
async function openStore(schema: string): Promise<{ dataSource: DataSource; store: TypeOrmIdempotencyStore }> {
  const dataSource = new DataSource({
    type: 'postgres',
    url: DATABASE_URL,
    schema,
    migrations: [...idempotencyMigrations],
    migrationsRun: true,
    logging: false,
  });
  await dataSource.initialize();
  return { dataSource, store: new TypeOrmIdempotencyStore(dataSource) };
}

/** A completed record, made as a request makes it: claim, then store the answer. */
async function completed(store: TypeOrmIdempotencyStore, scope: string, key: string, body: string, fingerprint: string | null = null): Promise<void> {
  const outcome = await store.claim({ scope, key, fingerprint, leaseMs: 30_000, ttlMs: DAY });
  if (outcome.status !== 'claimed') throw new Error(`could not claim ${scope} ${key}: ${outcome.status}`);
  const headers: Array<[string, string]> = [
    ['content-type', 'application/json; charset=utf-8'],
    ['location', '/orders/7'],
  ];
  await store.complete(outcome.ref, { status: 201, headers, body: Buffer.from(body) }, DAY);
}

async function claimed(store: TypeOrmIdempotencyStore, scope: string, key: string, leaseMs = 600_000): Promise<string> {
  const outcome = await store.claim({ scope, key, fingerprint: 'fp-claim', leaseMs, ttlMs: DAY });
  if (outcome.status !== 'claimed') throw new Error(`could not claim ${scope} ${key}: ${outcome.status}`);
  return outcome.ref.owner;
}

/** `nestjs-idempotency` run for real against dist, on the test's schema. */
describe('the nestjs-idempotency command line on PostgreSQL', () => {
  let schema: string;
  let dataSource: DataSource;
  let store: TypeOrmIdempotencyStore;
  const cli = (...args: string[]) => runBuiltCli([...args, '--schema', schema], { DATABASE_URL });
  const order = `order-${randomUUID()}`;
  const job = `job-${randomUUID()}`;
  const running = `run-${randomUUID()}`;
  const body = JSON.stringify({ id: 7, sku: 'widget', quantity: 2 });
  let stuckOwner: string;

  beforeAll(async () => {
    schema = await createSchema('cli');
    ({ dataSource, store } = await openStore(schema));
    await completed(store, 'POST /orders', order, body, 'fp-order');
    await completed(store, 'POST /orders#acct_2', order, '{"id":8}');
    // A claim whose process died: its lease ran out five minutes ago.
    stuckOwner = await claimed(store, 'job:fulfilment', job);
    await sql(`UPDATE "${schema}".idempotency_records SET lease_expires_at = clock_timestamp() - interval '5 minutes', attempts = 2 WHERE key = $1`, [job]);
    await claimed(store, 'run', running);
    // Expired: absent for requests, left for the purge.
    for (let index = 0; index < 3; index++) await completed(store, 'POST /old', `old-${index}-${order}`, '{}');
    await sql(`UPDATE "${schema}".idempotency_records SET expires_at = clock_timestamp() - interval '1 hour' WHERE scope = 'POST /old'`);
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropSchema(schema);
  });

  describe('inspect', () => {
    it('shows a completed record in its scope, without the body unless asked', async () => {
      const run = await cli('inspect', order, '--scope', 'POST /orders');
      expect(run).toMatchObject({ code: 0, stderr: '' });
      expect(run.stdout).toMatch(/^scope\s+POST \/orders$/m);
      expect(run.stdout).toMatch(new RegExp(`^key\\s+${order}$`, 'm'));
      expect(run.stdout).toMatch(/^state\s+completed/m);
      expect(run.stdout).toMatch(/^attempts\s+1$/m);
      expect(run.stdout).toMatch(/^status\s+201$/m);
      expect(run.stdout).toMatch(/^headers\s+content-type: application\/json; charset=utf-8\n\s+location: \/orders\/7$/m);
      expect(run.stdout).toMatch(new RegExp(`^body\\s+${Buffer.byteLength(body)} bytes \\(--body shows it\\)$`, 'm'));
      expect(run.stdout).toMatch(/^fingerprint\s+fp-order$/m);
      // What the logs and the diagnostics channel call this record, to find it from a log line.
      expect(run.stdout).toMatch(new RegExp(`^log hash\\s+${idempotencyKeyHash('POST /orders', order)}$`, 'm'));
      expect(run.stdout).not.toMatch(/^encrypted/m);
      expect(run.stdout).toMatch(/^expires\s+\S+Z \(in 23h 59m\)$/m);
      expect(run.stdout).not.toContain('widget');
    });

    it('says which key encrypted a record stored with encryption', async () => {
      // A schema of its own: the counts of the stats test stay as they are.
      const own = await createSchema('cli_encrypted');
      const { dataSource, store } = await openStore(own);
      try {
        const key = randomUUID();
        const encrypted = withEncryptionAtRest(store, { keys: [{ id: 'key-2026', key: Buffer.alloc(32, 7) }] });
        const outcome = await encrypted.claim({ scope: 'POST /secret', key, fingerprint: null, leaseMs: 30_000, ttlMs: DAY });
        if (outcome.status !== 'claimed') throw new Error(outcome.status);
        await encrypted.complete(outcome.ref, { status: 200, headers: [['content-type', 'text/plain']], body: Buffer.from('secret') }, DAY);
        const run = await runBuiltCli(['inspect', key, '--scope', 'POST /secret', '--schema', own], { DATABASE_URL });
        expect(run.stdout).toMatch(/^encrypted\s+with key "key-2026" \(headers and body\)$/m);
        expect(run.stdout).not.toContain('secret"');
      } finally {
        await dataSource.destroy();
        await dropSchema(own);
      }
    });

    it('finds the key in every scope without --scope', async () => {
      const run = await cli('inspect', order);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`2 live records with key "${order}"`);
      expect(run.stdout).toMatch(/^scope\s+POST \/orders$/m);
      expect(run.stdout).toMatch(/^scope\s+POST \/orders#acct_2$/m);
    });

    it('prints the records as JSON, with the body when asked', async () => {
      const run = await cli('inspect', order, '--scope', 'POST /orders', '--json', '--body');
      expect(run.code).toBe(0);
      const output = JSON.parse(run.stdout) as { records: Array<Record<string, unknown>>; truncated: boolean; source: string };
      expect(output.source).toContain(`schema ${schema}`);
      expect(output.truncated).toBe(false);
      expect(output.records).toHaveLength(1);
      const [record] = output.records;
      expect(record).toMatchObject({
        scope: 'POST /orders',
        key: order,
        state: 'completed',
        stuck: false,
        attempts: 1,
        leaseExpiresAt: null,
        leaseExpired: null,
        fingerprint: 'fp-order',
        response: { status: 201, bodyBytes: Buffer.byteLength(body), body, bodyEncoding: 'utf8' },
      });
      expect(Date.parse(record.expiresAt as string) - Date.parse(record.completedAt as string)).toBe(DAY);
      expect(record.owner).toMatch(/^[0-9a-f-]{36}$/);
    });

    it('says a claim whose lease ran out is stuck', async () => {
      const run = await cli('inspect', job, '--scope', 'job:fulfilment');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^state\s+in flight, STUCK: lease ran out 5m( \d+s)? ago/m);
      expect(run.stdout).toMatch(/^lease\s+\S+Z \(5m( \d+s)? ago\), run out$/m);
      expect(run.stdout).toMatch(/^attempts\s+2$/m);
      expect(run.stdout).toMatch(/^response\s+none yet$/m);
      expect(run.stdout).toMatch(new RegExp(`^owner\\s+${stuckOwner}$`, 'm'));

      const json = JSON.parse((await cli('inspect', job, '--json')).stdout) as { records: Array<Record<string, unknown>> };
      expect(json.records[0]).toMatchObject({ state: 'in_flight', stuck: true, leaseExpired: true, response: null, owner: stuckOwner });
    });

    it('tells a live claim from a stuck one', async () => {
      const run = await cli('inspect', running, '--json');
      expect((JSON.parse(run.stdout) as { records: unknown[] }).records[0]).toMatchObject({
        scope: 'run',
        state: 'in_flight',
        stuck: false,
        leaseExpired: false,
      });
    });

    it('exits with 1 and says so when no live record has the key (an expired one counts as absent)', async () => {
      for (const args of [
        ['inspect', `missing-${order}`],
        ['inspect', order, '--scope', 'POST /nowhere'],
        ['inspect', `old-0-${order}`],
      ]) {
        const run = await cli(...args);
        expect(run.code).toBe(1);
        expect(run.stdout).toBe('');
        expect(run.stderr).toMatch(/^nestjs-idempotency: No live record with key ".+" in (any scope|scope "POST \/nowhere")/);
      }
      const json = await cli('inspect', `missing-${order}`, '--json');
      expect(json.code).toBe(1);
      expect((JSON.parse(json.stdout) as { records: unknown[] }).records).toEqual([]);
    });

    it('shows at most --limit records and says more were left out', async () => {
      const run = await cli('inspect', order, '--limit', '1');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('Only the first 1 are shown');
    });
  });

  it('stats counts by state and scope and lists the stuck claims', async () => {
    const json = await cli('stats', '--json');
    expect(json.code).toBe(0);
    const stats = JSON.parse(json.stdout) as StatsJson;
    expect(stats.states).toEqual({ inFlight: 1, stuck: 1, completed: 2, expired: 3 });
    expect(stats.scopeCount).toBe(4);
    expect(stats.scopes).toEqual(
      expect.arrayContaining([
        { scope: 'POST /orders', live: 1, inFlight: 0, stuck: 0, completed: 1 },
        { scope: 'job:fulfilment', live: 1, inFlight: 0, stuck: 1, completed: 0 },
        { scope: 'run', live: 1, inFlight: 1, stuck: 0, completed: 0 },
      ]),
    );
    expect(stats.oldestStuck).toEqual([expect.objectContaining({ scope: 'job:fulfilment', key: job, attempts: 2 })]);

    const text = await cli('stats');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^stuck \(in flight, lease ran out\)\s+1$/m);
    expect(text.stdout).toMatch(/^expired, awaiting purge\s+3$/m);
    expect(text.stdout).toMatch(/^job:fulfilment\s+job-\S+…\S+\s+2\s+\S+Z \(5m( \d+s)? ago\)$/m);
  });

  it('purge deletes the expired records in batches and keeps the live ones', async () => {
    const own = await createSchema('cli_purge');
    const { dataSource: purgeSource, store: purgeStore } = await openStore(own);
    try {
      for (let index = 0; index < 7; index++) await completed(purgeStore, 'POST /old', `old-${index}`, '{}');
      await claimed(purgeStore, 'job:x', 'stuck-and-expired');
      await sql(
        `UPDATE "${own}".idempotency_records SET expires_at = clock_timestamp() - interval '1 minute', lease_expires_at = clock_timestamp() - interval '2 minutes'`,
      );
      await completed(purgeStore, 'POST /orders', 'live', '{}');
      await claimed(purgeStore, 'run', 'running');

      const run = await runBuiltCli(['purge', '--batch-size', '3', '--schema', own], { DATABASE_URL });
      expect(run).toMatchObject({ code: 0, stderr: '' });
      expect(run.stdout).toMatch(/^Deleted 8 expired records from PostgreSQL at .+ in 3 batches of up to 3, in [\d.]+ s \([\d,]+ records\/s\)\.$/m);
      const left = await sql<{ key: string }>(`SELECT key FROM "${own}".idempotency_records ORDER BY key`);
      expect(left.map(({ key }) => key)).toEqual(['live', 'running']);

      const again = await runBuiltCli(['purge', '--json', '--schema', own], { DATABASE_URL });
      expect(JSON.parse(again.stdout)).toMatchObject({ deleted: 0, batches: 1, batchSize: 1000 });
    } finally {
      await purgeSource.destroy();
      await dropSchema(own);
    }
  });

  it('reads the partitioned table with --partitioned, and drops its expired partitions', async () => {
    const own = await createSchema('cli_partitioned');
    const dataSource = new DataSource({
      type: 'postgres',
      url: DATABASE_URL,
      schema: own,
      migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
      migrationsRun: true,
      logging: false,
    });
    await dataSource.initialize();
    try {
      const store = new PartitionedTypeOrmIdempotencyStore(dataSource);
      await store.preparePartitions();
      await completed(store, 'POST /orders', 'partitioned-1', '{"id":1}');
      const run = (...args: string[]) => runBuiltCli([...args, '--schema', own, '--partitioned'], { DATABASE_URL });

      const inspect = await run('inspect', 'partitioned-1');
      expect(inspect.code).toBe(0);
      expect(inspect.stdout).toMatch(/^state\s+completed/m);
      expect((await run('inspect', 'partitioned-1', '--scope', 'POST /orders')).stdout).toMatch(/^scope\s+POST \/orders$/m);
      expect((JSON.parse((await run('stats', '--json')).stdout) as StatsJson).states).toMatchObject({ completed: 1 });
      // Without the flag, the plain table of the same schema holds nothing.
      expect((await runBuiltCli(['inspect', 'partitioned-1', '--schema', own], { DATABASE_URL })).code).toBe(1);

      // Two days that are over, as the app's earlier partitions: one whose records all expired, one still live.
      const table = `"${own}".${IDEMPOTENCY_PARTITIONED_TABLE}`;
      const partitions = async (): Promise<string[]> => {
        const rows: Array<{ name: string }> = await dataSource.query(
          `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`,
          [table],
        );
        return rows.map((row) => row.name).sort();
      };
      for (const [name, daysAgo, expires] of [
        ['expired_day', 3, `now() - interval '1 minute'`],
        ['live_day', 2, `now() + interval '1 hour'`],
      ] as const) {
        await dataSource.query(
          `CREATE TABLE "${own}".${name} PARTITION OF ${table}
           FOR VALUES FROM (date_trunc('day', now(), 'UTC') - interval '${daysAgo} days') TO (date_trunc('day', now(), 'UTC') - interval '${daysAgo - 1} days')`,
        );
        for (let i = 0; i < 3; i++) {
          await dataSource.query(
            `INSERT INTO ${table} (scope, key, state, owner, expires_at, response_status, response_headers, response_body, created_at)
             VALUES ('POST /p', $1, 'completed', gen_random_uuid(), ${expires}, 201, '[]', convert_to('old', 'UTF8'), date_trunc('day', now(), 'UTC') - $2::int * interval '1 day' + interval '1 hour')`,
            [`${name}-${i}`, daysAgo],
          );
        }
      }
      const before = await partitions();
      const purge = await run('purge', '--json');
      expect(purge.code).toBe(0);
      expect(JSON.parse(purge.stdout)).toMatchObject({ deleted: 3 });
      expect(await partitions()).toEqual(before.filter((name) => name !== 'expired_day'));
      expect((await run('inspect', 'live_day-0')).stdout).toMatch(/^state\s+completed/m);
      expect((await run('inspect', 'partitioned-1')).code).toBe(0);
    } finally {
      await dataSource.destroy();
      await dropSchema(own);
    }
  });

  describe('usage and failures', () => {
    it.each([
      [['frobnicate'], /Unknown command "frobnicate"/],
      [[], /Say which command to run/],
      [['inspect'], /inspect needs a key/],
      [['inspect', 'a', 'b'], /inspect takes one key/],
      [['stats', '--body'], /--body is not an option of stats/],
      [['inspect', 'k', '--colour'], /Unknown option '--colour'/],
      [['inspect', 'k', '--scope'], /--scope/],
      [['purge', '--batch-size', '0'], /--batch-size takes a whole number of at least 1, not "0"/],
      [['stats', '--redis', 'redis://127.0.0.1:6379', '--url', DATABASE_URL], /either --url \(PostgreSQL\) or --redis/],
      [['stats', '--prefix', 'x:'], /--prefix is for the Redis store/],
    ])('%j exits with 2 and says what is wrong', async (args, message) => {
      const run = await runBuiltCli(args, { DATABASE_URL });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
      expect(run.stderr).toMatch(/Run "nestjs-idempotency (\w+ )?--help" for usage\./);
    });

    it('prints help for the tool and for each command', async () => {
      const main = await runBuiltCli(['--help']);
      expect(main.code).toBe(0);
      expect(main.stdout).toMatch(/^Usage: nestjs-idempotency <command>/);
      for (const command of ['inspect', 'stats', 'purge']) {
        const help = await runBuiltCli([command, '--help']);
        expect(help.code).toBe(0);
        expect(help.stdout).toMatch(new RegExp(`^Usage: nestjs-idempotency ${command}`));
      }
      expect((await runBuiltCli(['inspect', '--help'])).stdout).toContain('Without it every scope is searched: on PostgreSQL that reads the whole table');
    });

    it('says what to check when the database cannot be reached or the table is not there, without a stack trace', async () => {
      const closed = new URL(DATABASE_URL);
      closed.port = '1';
      closed.password = 'secret';
      const down = await runBuiltCli(['stats', '--url', closed.toString()]);
      expect(down.code).toBe(1);
      expect(down.stderr).toMatch(
        /^nestjs-idempotency: Cannot connect to PostgreSQL at .+:\*\*\*@.+:1\/.+ \(connect ECONNREFUSED .+\)\. Check --url \(or DATABASE_URL\)/,
      );
      expect(down.stderr).not.toContain('secret');

      const noTable = await runBuiltCli(['inspect', 'k', '--scope', 's', '--schema', `${schema}_missing`], { DATABASE_URL });
      expect(noTable.code).toBe(1);
      expect(noTable.stderr).toMatch(/has no idempotency_records table in schema \S+_missing.+Pass --schema with the schema of the app's DataSource/);
      for (const run of [down, noTable]) expect(run.stderr).not.toMatch(/^\s+at /m);
    });
  });
});
