import IORedis from 'ioredis';
import { Client } from 'pg';
import { createConnection } from 'mysql2/promise';
import { DATABASE_URL } from './support/database';
import { MARIADB_URL } from './support/mariadb';
import { REDIS_URL } from './support/redis';

/** Fails the run at once, saying what to do, when PostgreSQL, MariaDB or Redis does not answer: the suites need real ones. */
export default async function ensureServices(): Promise<void> {
  await ensurePostgres();
  await ensureMariaDb();
  const redis = new IORedis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  try {
    await redis.connect();
    await redis.ping();
  } catch (error) {
    throw new Error(
      `The outbox suites need Redis at ${REDIS_URL} (${(error as Error).message}), and redis-server on the PATH. ` +
        'Start it, set REDIS_URL, or run `bash .ci/run`, which installs and starts it.',
      { cause: error },
    );
  } finally {
    redis.disconnect();
  }
}

async function ensurePostgres(): Promise<void> {
  const client = new Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `The tests need PostgreSQL at ${DATABASE_URL} (${(error as Error).message}). ` +
        'Start it, set DATABASE_URL, or run `bash .ci/run`, which installs and starts it.',
      { cause: error },
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function ensureMariaDb(): Promise<void> {
  try {
    const connection = await createConnection({ uri: MARIADB_URL, connectTimeout: 3000 });
    await connection.end();
  } catch (error) {
    throw new Error(
      `The MySQL store's suites need MariaDB (or MySQL) at ${MARIADB_URL}, user root without a password (${(error as Error).message}). ` +
        'Start it, set MARIADB_URL, or run `bash .ci/run`, which installs and starts it.',
      { cause: error },
    );
  }
}
