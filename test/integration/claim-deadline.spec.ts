import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import {
  CreatePartitionedIdempotencyRecords1763900000010,
  idempotencyMigrations,
  PartitionedTypeOrmIdempotencyStore,
  TypeOrmIdempotencyStore,
} from 'nestjs-idempotency';
import { IDEMPOTENCY_PARTITIONED_TABLE } from '../../libs/idempotency/src/storage/postgres/partitioning.options';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';

/**
 * A claim's deadline: the caller answered 503 when it passed, so a claim still queued for a pooled connection
 * then must not start (it would hold the key for a request nobody runs). One pooled connection, held by the test.
 */
describe('a claim whose deadline passes while it waits for a pooled connection', () => {
  let schema: string;
  let dataSource: DataSource;

  beforeAll(async () => {
    schema = await createSchema('claim_deadline');
    dataSource = await new DataSource({
      type: 'postgres',
      url: DATABASE_URL,
      schema,
      migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
      migrationsRun: true,
      extra: { max: 1 },
    }).initialize();
    await new PartitionedTypeOrmIdempotencyStore(dataSource).preparePartitions();
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropSchema(schema);
  });

  const stores: Array<[string, () => TypeOrmIdempotencyStore, string]> = [
    ['PostgreSQL', () => new TypeOrmIdempotencyStore(dataSource), 'idempotency_records'],
    ['PostgreSQL without prepared statements', () => new TypeOrmIdempotencyStore(dataSource, { preparedStatements: false }), 'idempotency_records'],
    ['PostgreSQL, time-partitioned', () => new PartitionedTypeOrmIdempotencyStore(dataSource), IDEMPOTENCY_PARTITIONED_TABLE],
  ];

  it.each(stores)('%s: does not start, and claims as usual before it', async (_name, makeStore, table) => {
    const store = makeStore();
    const request = (key: string, deadline: number) => ({ scope: 'POST /t', key, fingerprint: null, leaseMs: 30_000, ttlMs: 60_000, deadline });
    const rows = async (key: string) => (await sql(`SELECT key FROM "${schema}".${table} WHERE key = $1`, [key])).length;

    const holder = dataSource.createQueryRunner();
    await holder.connect();
    const late = randomUUID();
    let refused: unknown;
    try {
      const claiming = store.claim(request(late, Date.now() + 200)).catch((error: unknown) => (refused = error));
      await sleep(400);
      expect(refused).toBeUndefined(); // still queued for the connection
      await holder.release();
      await claiming;
    } finally {
      if (!holder.isReleased) await holder.release();
    }
    expect((refused as Error).message).toMatch(/was not started/);
    expect(await rows(late)).toBe(0);

    const onTime = randomUUID();
    expect((await store.claim(request(onTime, Date.now() + 5_000))).status).toBe('claimed');
    expect(await rows(onTime)).toBe(1);
  });
});
