import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { IdempotencyConfigurationError, idempotencyMigrations, TypeOrmIdempotencyStore } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';

/** The store's named statements, on one pooled connection so that the test can reach behind them. */
describe('prepared statements', () => {
  let schema: string;
  let dataSource: DataSource;
  const claim = (store: TypeOrmIdempotencyStore) => store.claim({ scope: 'POST /t', key: randomUUID(), fingerprint: null, leaseMs: 30_000, ttlMs: 60_000 });

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
