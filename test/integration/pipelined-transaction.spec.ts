import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { DataSource, type EntityManager, type EntitySubscriberInterface, type QueryRunner, type TransactionCommitEvent } from 'typeorm';
import {
  CreatePartitionedIdempotencyRecords1763900000010,
  idempotencyMigrations,
  PartitionedTypeOrmIdempotencyStore,
  type TransactionalIdempotencyStore,
  TypeOrmIdempotencyStore,
} from 'nestjs-idempotency';
import { type ClaimRequest } from 'nestjs-idempotency/testing';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';
import { countSocketWrites } from '../support/socket-writes';

/** Every `client.query()` of node-postgres while `work` runs: the statements (or batches) it sent, one round trip each. */
async function recordQueries(work: () => Promise<unknown>): Promise<string[]> {
  const { query } = Client.prototype as unknown as { query: (...args: unknown[]) => unknown };
  const sent: string[] = [];
  Client.prototype.query = function (this: Client, ...args: unknown[]) {
    const [config] = args as [string | { text?: string; statements?: Array<{ text: string }> }];
    if (typeof config === 'string') sent.push(config);
    else if (config.text !== undefined) sent.push(config.text);
    else sent.push(`batch: ${(config.statements ?? []).map((statement) => statement.text.split('\n')[0].trim()).join(' | ')}`);
    return query.apply(this, args);
  } as typeof Client.prototype.query;
  try {
    await work();
  } finally {
    Client.prototype.query = query as typeof Client.prototype.query;
  }
  return sent;
}

/** What TypeORM reports of each transaction, as an entity subscriber sees it. */
const events: Array<{ event: string; queryRunner: QueryRunner }> = [];
const record = (event: string) => (e: TransactionCommitEvent) => void events.push({ event, queryRunner: e.queryRunner });
const transactionEvents: EntitySubscriberInterface = {
  beforeTransactionStart: record('beforeStart'),
  afterTransactionStart: record('afterStart'),
  beforeTransactionCommit: record('beforeCommit'),
  afterTransactionCommit: record('afterCommit'),
  afterTransactionRollback: record('afterRollback'),
};

/** Transaction mode on node-postgres: START TRANSACTION goes out with the claim, and COMMIT with the completion. */
describe('a claim in transaction mode, in fewer writes', () => {
  let schema: string;
  let dataSource: DataSource;

  const request = (key = randomUUID()): ClaimRequest => ({ scope: 'POST /pipelined', key, fingerprint: null, leaseMs: 30_000, ttlMs: 60_000 });
  const response = { status: 201, headers: [] as Array<[string, string]>, body: Buffer.from('made') };
  const open = async (poolSize: number, extra: Record<string, unknown> = {}) => {
    const opened = await new DataSource({
      type: 'postgres',
      url: DATABASE_URL,
      schema,
      migrations: [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010],
      migrationsRun: true,
      extra: { max: poolSize, ...extra },
    }).initialize();
    opened.subscribers.push(transactionEvents);
    return opened;
  };
  const things = async (...ids: string[]) =>
    (await sql<{ id: string }>(`SELECT id FROM "${schema}".things WHERE id = ANY($1::uuid[])`, [ids])).map((row) => row.id);

  beforeAll(async () => {
    schema = await createSchema('pipelined_transaction');
    dataSource = await open(2);
    await new PartitionedTypeOrmIdempotencyStore(dataSource).preparePartitions();
    await sql(`CREATE TABLE "${schema}".things (id uuid PRIMARY KEY)`);
  });
  beforeEach(() => {
    events.length = 0;
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropSchema(schema);
  });

  type MakeStore = (dataSource: DataSource, options?: { preparedStatements: boolean }) => TransactionalIdempotencyStore;
  const stores: Array<[string, MakeStore, number]> = [
    ['PostgreSQL', (dataSource, options) => new TypeOrmIdempotencyStore(dataSource, options), 1],
    ['PostgreSQL, time-partitioned', (dataSource, options) => new PartitionedTypeOrmIdempotencyStore(dataSource, options), 2],
  ];

  /** A first request: its claim, one statement of its handler, its completion. */
  const firstRequest = async (store: TransactionalIdempotencyStore, thing = randomUUID()) => {
    const outcome = await store.claimInTransaction(request(), 2_000, 10_000);
    if (outcome.status !== 'claimed') throw new Error(`expected a claim, got ${outcome.status}`);
    await outcome.claim.manager.query(`INSERT INTO "${schema}".things (id) VALUES ($1)`, [thing]);
    await outcome.claim.complete(response, 60_000);
  };

  it.each(stores)('%s: a first request makes two round trips fewer than with plain statements', async (_name, makeStore, claimStatements) => {
    const store = makeStore(dataSource);
    // Warmed up: the default isolation level is known, the claim's statements are prepared.
    await firstRequest(store);
    const [thing, plainThing] = [randomUUID(), randomUUID()];
    let sent: string[] = [];
    const writes = await countSocketWrites(async () => (sent = await recordQueries(() => firstRequest(store, thing))));
    expect(writes).toBe(sent.length);
    expect(sent).toEqual([
      expect.stringMatching(/^batch: START TRANSACTION \| /),
      ...Array.from({ length: claimStatements - 1 }, (): unknown => expect.anything()),
      expect.stringMatching(/^INSERT INTO .*things/),
      expect.stringMatching(/^batch: WITH done AS \(UPDATE .* \| COMMIT$/),
    ]);
    // The same request one statement at a time: START TRANSACTION and COMMIT are round trips of their own.
    const plain = makeStore(dataSource, { preparedStatements: false });
    await firstRequest(plain);
    let plainSent: string[] = [];
    const plainWrites = await countSocketWrites(async () => (plainSent = await recordQueries(() => firstRequest(plain, plainThing))));
    expect(plainWrites - writes).toBe(plainSent.length - sent.length);
    expect(plainSent[0]).toBe('START TRANSACTION');
    expect(plainSent[plainSent.length - 1]).toBe('COMMIT');
    expect(plainSent.length - sent.length).toBe(2);
    expect(await things(thing, plainThing)).toHaveLength(2);
  });

  it.each(stores)('%s: claims on a fresh connection, and on one that has the claim prepared', async (_name, makeStore) => {
    const fresh = await open(1);
    try {
      const store = makeStore(fresh);
      type Wired = { connection: { parsedStatements: Record<string, string> } };
      const [client, release] = (await fresh.driver.obtainMasterConnection()) as [Wired, () => void];
      release();
      const parsed = () => Object.keys(client.connection.parsedStatements).filter((name) => name.startsWith('nestjs_idempotency_'));
      expect(parsed()).toEqual([]);
      const [first, second] = [randomUUID(), randomUUID()];
      await firstRequest(store, first);
      const prepared = parsed();
      expect(prepared.length).toBeGreaterThan(0);
      await firstRequest(store, second);
      expect(parsed()).toEqual(prepared);
      expect(await things(first, second)).toHaveLength(2);
      const [{ n }] = await fresh.query<Array<{ n: number }>>(`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = ANY($1)`, [prepared]);
      expect(n).toBe(prepared.length);
    } finally {
      await fresh.destroy();
    }
  });

  it.each(stores)(
    '%s: the QueryRunner and subscribers see the transaction as startTransaction() and commitTransaction() leave it',
    async (_name, makeStore) => {
      const store = makeStore(dataSource);
      const outcome = await store.claimInTransaction(request(), 2_000, 10_000);
      if (outcome.status !== 'claimed') throw new Error(`expected a claim, got ${outcome.status}`);
      const runner = outcome.claim.manager.queryRunner as QueryRunner & { transactionDepth: number };
      expect([runner.isTransactionActive, runner.transactionDepth]).toEqual([true, 1]);
      const seen = () => events.map((e) => [e.event, e.queryRunner === runner]);
      expect(seen()).toEqual([
        ['beforeStart', true],
        ['afterStart', true],
      ]);
      await outcome.claim.complete(response, 60_000);
      expect(seen()).toEqual([
        ['beforeStart', true],
        ['afterStart', true],
        ['beforeCommit', true],
        ['afterCommit', true],
      ]);
      expect([runner.isTransactionActive, runner.transactionDepth, runner.isReleased]).toEqual([false, 0, true]);
    },
  );

  it.each(stores)("%s: the handler's manager.transaction() takes a savepoint in the claim's transaction", async (_name, makeStore) => {
    const store = makeStore(dataSource);
    const outcome = await store.claimInTransaction(request(), 2_000, 10_000);
    if (outcome.status !== 'claimed') throw new Error(`expected a claim, got ${outcome.status}`);
    // TypeORM's own EntityManager, as a handler declares it.
    const manager = outcome.claim.manager as EntityManager;
    const [kept, undone] = [randomUUID(), randomUUID()];
    const sent = await recordQueries(async () => {
      await manager.transaction((em) => em.query(`INSERT INTO "${schema}".things (id) VALUES ($1)`, [kept]));
      const inner = manager.transaction(async (em) => {
        await em.query(`INSERT INTO "${schema}".things (id) VALUES ($1)`, [undone]);
        throw new Error('the inner transaction fails');
      });
      await expect(inner).rejects.toThrow('the inner transaction fails');
    });
    expect(sent.filter((text) => !text.startsWith('INSERT'))).toEqual([
      'SAVEPOINT typeorm_1',
      'RELEASE SAVEPOINT typeorm_1',
      'SAVEPOINT typeorm_1',
      'ROLLBACK TO SAVEPOINT typeorm_1',
    ]);
    // Nothing committed before the completion.
    expect(await things(kept, undone)).toEqual([]);
    await outcome.claim.complete(response, 60_000);
    expect(await things(kept, undone)).toEqual([kept]);
  });

  it.each(stores)(
    '%s: a record no longer the claim’s cannot be completed; nothing commits; the connection goes back with no transaction',
    async (_name, makeStore) => {
      const store = makeStore(dataSource);
      const key = randomUUID();
      const outcome = await store.claimInTransaction(request(key), 2_000, 10_000);
      if (outcome.status !== 'claimed') throw new Error(`expected a claim, got ${outcome.status}`);
      const { manager } = outcome.claim;
      const thing = randomUUID();
      await manager.query(`INSERT INTO "${schema}".things (id) VALUES ($1)`, [thing]);
      // Another owner's now, as a take-over would leave it.
      const table = store instanceof PartitionedTypeOrmIdempotencyStore ? 'idempotency_partitioned_records' : 'idempotency_records';
      await manager.query(`UPDATE "${schema}".${table} SET owner = gen_random_uuid() WHERE scope = $1 AND key = $2`, ['POST /pipelined', key]);
      const runner = manager.queryRunner as QueryRunner & { transactionDepth: number };

      await expect(outcome.claim.complete(response, 60_000)).rejects.toThrow(
        "The claim's record could not be completed: it expired while the handler ran. Nothing was committed.",
      );
      expect(await things(thing)).toEqual([]);
      expect(await store.find('POST /pipelined', key)).toBeUndefined();
      expect(events.map((e) => e.event)).not.toContain('afterCommit');
      expect(events[events.length - 1].event).toBe('afterRollback');
      expect(events[events.length - 1].queryRunner).toBe(runner);
      expect([runner.isTransactionActive, runner.transactionDepth, runner.isReleased]).toEqual([false, 0, true]);
      await expectNoTransactionLeftOpen();
    },
  );

  it.each(stores)('%s: a claim whose key is held answers in-flight, and its connection goes back with no transaction', async (_name, makeStore) => {
    const store = makeStore(dataSource);
    const key = randomUUID();
    const holder = await store.claimInTransaction(request(key), 2_000, 10_000);
    if (holder.status !== 'claimed') throw new Error(`expected a claim, got ${holder.status}`);
    try {
      // Its START TRANSACTION ran, then its claim waited past lock_timeout.
      expect(await store.claimInTransaction(request(key), 200, 10_000)).toMatchObject({ status: 'in-flight' });
      await expectNoTransactionLeftOpen();
    } finally {
      await holder.claim.rollback();
    }
  });

  it.each(stores)('%s: asks for READ COMMITTED with START TRANSACTION where the default isolation is another', async (_name, makeStore) => {
    const serializable = await open(1, { options: '-c default_transaction_isolation=serializable' });
    try {
      const store = makeStore(serializable);
      const outcome = await store.claimInTransaction(request(), 2_000, 10_000);
      if (outcome.status !== 'claimed') throw new Error(`expected a claim, got ${outcome.status}`);
      const [{ level }] = await outcome.claim.manager.query<Array<{ level: string }>>(`SELECT current_setting('transaction_isolation') AS level`);
      expect(level).toBe('read committed');
      await outcome.claim.complete(response, 60_000);
    } finally {
      await serializable.destroy();
    }
  });

  /** Every idle pooled connection, taken at once: each runs its statement in a transaction of its own. */
  async function expectNoTransactionLeftOpen(): Promise<void> {
    const runners = [dataSource.createQueryRunner(), dataSource.createQueryRunner()];
    try {
      const idle = runners.slice(0, (dataSource.driver as unknown as { master: { idleCount: number } }).master.idleCount);
      for (const runner of idle) {
        const [{ fresh }] = (await runner.query(`SELECT now() = statement_timestamp() AS fresh`)) as Array<{ fresh: boolean }>;
        expect(fresh).toBe(true);
      }
    } finally {
      await Promise.all(runners.map((runner) => runner.release()));
    }
  }
});
