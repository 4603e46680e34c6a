import { setTimeout as sleep } from 'node:timers/promises';
import type { TypeOrmModuleOptions } from '@nestjs/typeorm';
import { idempotencyMigrations, mysqlIdempotencyMigrations } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema, sql } from './database';
import { createDatabase, dropDatabase, mariadbUrl, mysql } from './mariadb';
import { describeEachRoute } from './postgres-routes';

/** The databases the SQL store runs on, each suite that matters runs on both. */
export type Engine = 'postgres' | 'mariadb';
export const ENGINES: Engine[] = ['postgres', 'mariadb'];

/** Where a suite's app connects: an engine, and on PostgreSQL one of the routes (straight, or through a PgBouncer). */
export interface DatabaseRoute {
  readonly engine: Engine;
  /** The URL the app's DataSource connects to; the engine's own server where absent. */
  readonly url?: string;
  /** The library's `preparedStatements` option for this route; the default where absent. */
  readonly preparedStatements?: false;
}

/**
 * `describe(title ...)` once per way to a database: PostgreSQL on each route of `describeEachRoute` (its PgBouncer
 * started and stopped around the block), then MariaDB.
 */
export function describeEachDatabase(title: string, body: (route: DatabaseRoute) => void): void {
  describeEachRoute(`${title}, PostgreSQL`, (route) =>
    body({
      engine: 'postgres',
      // Read when the block's hooks run: a PgBouncer's URL is known once it started.
      get url() {
        return route.url;
      },
      preparedStatements: route.preparedStatements,
    }),
  );
  describe(`${title}, MariaDB`, () => body({ engine: 'mariadb' }));
}

/** The options of `startApp()` that put an app on `route`, in the test file's `database`. */
export function onRoute(route: DatabaseRoute, database: TestDatabase) {
  return { engine: route.engine, schema: database.name, databaseUrl: route.url, idempotency: { preparedStatements: route.preparedStatements } };
}

/** The place of one test file's tables: a schema of its own on PostgreSQL, a database of its own on MariaDB. */
export interface TestDatabase {
  engine: Engine;
  name: string;
  /** How many rows of `effects` (the handlers' side effects) carry `label`. */
  effects(label: string): Promise<number>;
  /** The state and attempts of the record of `key`, as stored. */
  record(key: string): Promise<{ state: string; attempts: number } | undefined>;
  /** Creates the `effects` table by hand, for apps that do not synchronize. */
  createEffectsTable(): Promise<void>;
  /** How many connections sit idle in an open transaction that wrote to `effects`. */
  idleWriters(): Promise<number>;
  /** Ends every connection that sits idle in an open transaction which wrote to `effects`; returns how many. */
  killIdleWriters(): Promise<number>;
  drop(): Promise<void>;
}

export async function createTestDatabase(engine: Engine, label: string): Promise<TestDatabase> {
  return engine === 'postgres' ? postgres(await createSchema(label)) : mariadb(await createDatabase(label));
}

/** TypeORM's options for an app on `name` (schema or database), with the library's migrations run at start. */
export function typeOrmOptions(
  engine: Engine,
  name: string,
  extra: { poolSize?: number; url?: string; connectionOptions?: string } = {},
): TypeOrmModuleOptions {
  if (engine === 'postgres') {
    return {
      type: 'postgres',
      url: extra.url ?? DATABASE_URL,
      schema: name,
      migrations: [...idempotencyMigrations],
      migrationsRun: true,
      extra: { max: extra.poolSize ?? 10, options: extra.connectionOptions },
    };
  }
  return {
    type: 'mariadb',
    url: extra.url ?? mariadbUrl(name),
    migrations: [...mysqlIdempotencyMigrations],
    migrationsRun: true,
    poolSize: extra.poolSize ?? 10,
  };
}

/** How many rows of `effects` in the schema or database `name` carry `label`. */
export async function countEffects(engine: Engine, name: string, label: string): Promise<number> {
  if (engine === 'mariadb') return Number((await mysql<{ count: number }>('SELECT count(*) AS count FROM effects WHERE label = ?', [label], name))[0].count);
  return (await sql<{ count: number }>(`SELECT count(*)::int AS count FROM "${name}".effects WHERE label = $1`, [label]))[0].count;
}

function postgres(schema: string): TestDatabase {
  return {
    engine: 'postgres',
    name: schema,
    effects: (label) => countEffects('postgres', schema, label),
    record: async (key) =>
      (await sql<{ state: string; attempts: number }>(`SELECT state, attempts FROM "${schema}".idempotency_records WHERE key = $1`, [key]))[0],
    createEffectsTable: async () => void (await sql(`CREATE TABLE "${schema}".effects (id serial PRIMARY KEY, label text NOT NULL)`)),
    idleWriters: () => idleInTransaction(schema, 'count(*)::int'),
    killIdleWriters: () => idleInTransaction(schema, 'count(pg_terminate_backend(pid))::int'),
    drop: () => dropSchema(schema),
  };
}

/** `count` over the sessions idle in a transaction whose last statement wrote to the schema's effects. */
async function idleInTransaction(schema: string, count: string): Promise<number> {
  const [row] = await sql<{ count: number }>(
    `SELECT ${count} AS count FROM pg_stat_activity WHERE state = 'idle in transaction' AND query LIKE $1`,
    // "schema"."effects" as TypeORM writes it, "schema".effects as the crash app does.
    [`%"${schema}".%effects%`],
  );
  return row.count;
}

/**
 * InnoDB serves information_schema.INNODB_TRX from a server-wide snapshot that it takes again only once the table
 * went unread for 100 ms (MariaDB's trx0i_s.cc, `CACHE_MIN_IDLE_TIME_NS`; every read restarts that wait). Polled
 * closer than that, the table shows the transactions of the first poll for ever: reads from here are spaced wider.
 */
const TRX_SNAPSHOT_IDLE_MS = 150;
let lastTrxRead = 0;

async function readTransactions<T>(text: string, params: unknown[]): Promise<T[]> {
  await sleep(Math.max(0, lastTrxRead + TRX_SNAPSHOT_IDLE_MS - Date.now()));
  try {
    return await mysql<T>(text, params);
  } finally {
    lastTrxRead = Date.now();
  }
}

function mariadb(database: string): TestDatabase {
  // The connections of this database that hold an open InnoDB transaction with writes, and run no statement now.
  const idleWriters = () =>
    readTransactions<{ id: number }>(
      `SELECT p.ID AS id FROM information_schema.PROCESSLIST p JOIN information_schema.INNODB_TRX t ON t.trx_mysql_thread_id = p.ID
       WHERE p.DB = ? AND p.COMMAND = 'Sleep' AND t.trx_rows_modified > 0`,
      [database],
    );
  return {
    engine: 'mariadb',
    name: database,
    effects: (label) => countEffects('mariadb', database, label),
    record: async (key) =>
      (await mysql<{ state: string; attempts: number }>('SELECT state, attempts FROM idempotency_records WHERE `key` = ?', [key], database))[0],
    createEffectsTable: async () => void (await mysql('CREATE TABLE effects (id int AUTO_INCREMENT PRIMARY KEY, label text NOT NULL)', [], database)),
    idleWriters: async () => (await idleWriters()).length,
    killIdleWriters: async () => {
      const ids = await idleWriters();
      for (const { id } of ids) await mysql(`KILL CONNECTION ${Number(id)}`);
      return ids.length;
    },
    drop: () => dropDatabase(database),
  };
}
