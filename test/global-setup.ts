import IORedis from 'ioredis';
import { Client } from 'pg';
import { DATABASE_URL } from './support/database';
import { REDIS_URL } from './support/redis';

/** Fails the run at once, saying what to do, when PostgreSQL or Redis does not answer: the suites need real ones. */
export default async function ensureServices(): Promise<void> {
  await ensurePostgres();
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
