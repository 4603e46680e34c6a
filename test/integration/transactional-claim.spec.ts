import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource } from 'typeorm';
import {
  CreatePartitionedIdempotencyRecords1763900000010,
  idempotencyMigrations,
  PartitionedTypeOrmIdempotencyStore,
  type TransactionalIdempotencyStore,
  TypeOrmIdempotencyStore,
} from 'nestjs-idempotency';
import { type ClaimRequest } from 'nestjs-idempotency/testing';
import { TransactionAbortedError } from '../../libs/idempotency/src/errors/transaction-aborted.error';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';

/** The PostgreSQL stores' claims held in a transaction across the handler, on the real server. */
describe('a claim held in a transaction', () => {
  let schema: string;
  let dataSource: DataSource;

  const request = (key = randomUUID()): ClaimRequest => ({ scope: 'POST /tx', key, fingerprint: null, leaseMs: 30_000, ttlMs: 60_000 });
  const open = (poolSize: number) =>
    new DataSource({
      type: 'postgres',
      url: DATABASE_URL,
      schema,
      migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
      migrationsRun: true,
      extra: { max: poolSize },
    }).initialize();

  beforeAll(async () => {
    schema = await createSchema('transactional_claim');
    dataSource = await open(4);
    await new PartitionedTypeOrmIdempotencyStore(dataSource).preparePartitions();
    await sql(`CREATE TABLE "${schema}".things (id uuid PRIMARY KEY)`);
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropSchema(schema);
  });

  const stores: Array<[string, (dataSource: DataSource) => TransactionalIdempotencyStore]> = [
    ['PostgreSQL', (dataSource) => new TypeOrmIdempotencyStore(dataSource)],
    ['PostgreSQL without prepared statements', (dataSource) => new TypeOrmIdempotencyStore(dataSource, { preparedStatements: false })],
    ['PostgreSQL, time-partitioned', (dataSource) => new PartitionedTypeOrmIdempotencyStore(dataSource)],
  ];

  it('time-partitioned: a record that expired under its handler cannot be completed, and nothing of the handler commits', async () => {
    const store = new PartitionedTypeOrmIdempotencyStore(dataSource);
    const key = randomUUID();
    const outcome = await store.claimInTransaction({ ...request(key), leaseMs: 100, ttlMs: 100 }, 2_000, 10_000);
    if (outcome.status !== 'claimed') throw new Error(`expected a claim, got ${outcome.status}`);
    const thing = randomUUID();
    await outcome.claim.manager.query(`INSERT INTO "${schema}".things (id) VALUES ($1)`, [thing]);
    await sleep(300);
    await expect(outcome.claim.complete({ status: 201, headers: [], body: Buffer.from('late') }, 60_000)).rejects.toThrow(/expired while the handler ran/);
    expect(await sql(`SELECT 1 FROM "${schema}".things WHERE id = $1`, [thing])).toHaveLength(0);
    expect(await store.find('POST /tx', key)).toBeUndefined();
  });

  it.each(stores)('%s: complete() after a statement of the handler failed throws TransactionAbortedError and commits nothing', async (_name, makeStore) => {
    const store = makeStore(dataSource);
    const key = randomUUID();
    const outcome = await store.claimInTransaction(request(key), 2_000, 10_000);
    if (outcome.status !== 'claimed') throw new Error(`expected a claim, got ${outcome.status}`);
    const { manager } = outcome.claim;

    // The handler's "unique violation, answer 400" pattern: its failed statement is caught.
    const thing = randomUUID();
    await manager.query(`INSERT INTO "${schema}".things (id) VALUES ($1)`, [thing]);
    await expect(manager.query(`INSERT INTO "${schema}".things (id) VALUES ($1)`, [thing])).rejects.toMatchObject({ driverError: { code: '23505' } });

    const completing = outcome.claim.complete({ status: 400, headers: [], body: Buffer.from('taken') }, 60_000);
    await expect(completing).rejects.toBeInstanceOf(TransactionAbortedError);

    expect(await sql(`SELECT id FROM "${schema}".things WHERE id = $1`, [thing])).toHaveLength(0);
    expect(await store.find('POST /tx', key)).toBeUndefined();
    // The connection went back to the pool, and the key is free.
    const again = await store.claimInTransaction(request(key), 2_000, 10_000);
    expect(again.status).toBe('claimed');
    if (again.status === 'claimed') await again.claim.rollback();
  });

  it.each(stores)('%s: waits no longer than its wait for the connection and the first read of the isolation level', async (_name, makeStore) => {
    const small = await open(1);
    // A new store: it has not yet asked for the default isolation level.
    const store = makeStore(small);
    const holder = small.createQueryRunner();
    await holder.connect();
    const key = randomUUID();
    const startedAt = Date.now();
    let waited: number;
    try {
      const claiming = store.claimInTransaction(request(key), 300, 10_000).then(
        (outcome) => outcome,
        (error: unknown) => error,
      );
      // Unreferenced: once the claim has failed, this timer must not keep the test run alive.
      const settled = await Promise.race([claiming, sleep(1_500, 'still waiting', { ref: false })]);
      waited = Date.now() - startedAt;
      expect(settled).toBeInstanceOf(Error);
      expect((settled as Error).message).toMatch(/No pooled connection came within/);
    } finally {
      await holder.release();
    }
    expect(waited).toBeLessThan(1_000);
    expect(await store.find('POST /tx', key)).toBeUndefined();
    await small.destroy();
  });
});
