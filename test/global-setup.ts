import { Client } from 'pg';
import { DATABASE_URL } from './support/database';

/** Fails the run at once, saying what to do, when no PostgreSQL answers: every suite needs a real one. */
export default async function ensurePostgres(): Promise<void> {
  const client = new Client({ connectionString: DATABASE_URL, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
  } catch (error) {
    throw new Error(
      `The tests need PostgreSQL at ${DATABASE_URL} (${(error as Error).message}). ` +
        'Start it, set DATABASE_URL, or run `bash .ci/run`, which installs and starts it.',
    );
  } finally {
    await client.end().catch(() => undefined);
  }
}
