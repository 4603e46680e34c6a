import { randomUUID } from 'node:crypto';
import { Client } from 'pg';
import { DataSource } from 'typeorm';
import { IdempotencyConfigurationError, idempotencyMigrations, TypeOrmIdempotencyStore } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { describeEachRoute } from '../support/postgres-routes';

const claim = (store: TypeOrmIdempotencyStore) => store.claim({ scope: 'POST /t', key: randomUUID(), fingerprint: null, leaseMs: 30_000, ttlMs: 60_000 });

/** The store's named statements, on one pooled connection so that the test can reach behind them. */
describe('prepared statements', () => {
  let schema: string;
  let dataSource: DataSource;

  beforeAll(async () => {
    schema = await createSchema('prepared');
    dataSource = await new DataSource({
      type: 'postgres',
      url: DATABASE_URL,
      schema,
      migrations: [...idempotencyMigrations],
      migrationsRun: true,
      extra: { max: 1 },
    }).initialize();
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropSchema(schema);
  });

  it('says to turn them off when the connection no longer has them (a pooler that hands over another server connection)', async () => {
    const store = new TypeOrmIdempotencyStore(dataSource);
    expect((await claim(store)).status).toBe('claimed');
    // What a transaction-pooling PgBouncer does to a client: its next statement lands where nothing was prepared.
    await dataSource.query('DEALLOCATE ALL');
    const refused = await claim(store).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(IdempotencyConfigurationError);
    expect((refused as Error).message).toMatch(/preparedStatements: false/);
  });

  it('works without them: preparedStatements: false sends plain statements', async () => {
    const store = new TypeOrmIdempotencyStore(dataSource, { preparedStatements: false });
    await dataSource.query('DEALLOCATE ALL');
    expect((await claim(store)).status).toBe('claimed');
    expect((await dataSource.query<Array<{ n: number }>>(`SELECT count(*)::int AS n FROM pg_prepared_statements`))[0].n).toBe(0);
  });
});

/**
 * The same on a real PgBouncer in transaction pooling. Without prepared statement support, the store's named
 * statements meet server connections where they were never prepared; 1.21+ with max_prepared_statements keeps them.
 */
describeEachRoute('prepared statements left on', (route) => {
  let schema: string;
  let dataSource: DataSource;

  beforeAll(async () => {
    schema = await createSchema('prepared_route');
    dataSource = await new DataSource({
      type: 'postgres',
      url: route.url,
      schema,
      migrations: [...idempotencyMigrations],
      migrationsRun: true,
      extra: { max: 1 },
    }).initialize();
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropSchema(schema);
  });

  it(route.preparedStatements === false ? 'fail with the error that says to turn them off' : 'work on every server connection', async () => {
    // Several server connections behind PgBouncer, held at once so that it opens them; the test's one pooled
    // connection then goes to another at each transaction (server_round_robin).
    const holders = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const client = new Client({ connectionString: route.url });
        await client.connect();
        await client.query('BEGIN');
        return client;
      }),
    );
    await Promise.all(
      holders.map(async (client) => {
        await client.query('COMMIT');
        await client.end();
      }),
    );
    const store = new TypeOrmIdempotencyStore(dataSource);
    const outcomes = await Array.from({ length: 6 }).reduce<Promise<unknown[]>>(
      async (done) => [
        ...(await done),
        await claim(store).then(
          (outcome) => outcome.status,
          (error: unknown) => error,
        ),
      ],
      Promise.resolve([]),
    );
    if (route.preparedStatements === false) {
      const refused = outcomes.find((outcome) => outcome instanceof IdempotencyConfigurationError);
      expect(refused).toBeInstanceOf(IdempotencyConfigurationError);
      expect((refused as Error).message).toMatch(/preparedStatements: false/);
    } else {
      expect(outcomes).toEqual(Array.from({ length: 6 }, () => 'claimed'));
    }
  });
});
