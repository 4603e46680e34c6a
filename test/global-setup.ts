import IORedis from 'ioredis';
import { Client } from 'pg';
import { createConnection } from 'mysql2/promise';
import { DATABASE_URL } from './support/database';
import { MARIADB_URL } from './support/mariadb';
import { REDIS_URL } from './support/redis';
import { RABBITMQ_URL } from './support/rabbitmq';
import { NATS_URL } from './support/nats';
import { connect as connectAmqp } from 'amqplib';
import { Socket } from 'node:net';

/** Fails the run at once, saying what to do, when PostgreSQL, MariaDB, Redis, RabbitMQ or NATS does not answer: the suites need real ones. */
export default async function ensureServices(): Promise<void> {
  await ensurePostgres();
  await ensureMariaDb();
  await ensureRabbitMq();
  await ensureNats();
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

async function ensureRabbitMq(): Promise<void> {
  try {
    const connection = await connectAmqp(RABBITMQ_URL, { timeout: 3000 });
    await connection.close();
  } catch (error) {
    throw new Error(
      `The message suites need RabbitMQ at ${RABBITMQ_URL}, user guest/guest (${(error as Error).message}). ` +
        'Start it (rabbitmq-server -detached), set RABBITMQ_URL, or run `bash .ci/run`, which installs and starts it.',
      { cause: error },
    );
  }
}

/** NATS answers its port with an INFO line; JetStream is checked by the suites that use it. */
async function ensureNats(): Promise<void> {
  const { hostname, port } = new URL(NATS_URL);
  try {
    await new Promise<void>((resolve, reject) => {
      const socket = new Socket();
      socket.setTimeout(3000, () => socket.destroy(new Error('no answer within 3 s')));
      socket.once('data', () => (socket.destroy(), resolve()));
      socket.once('error', reject);
      socket.connect(Number(port), hostname);
    });
  } catch (error) {
    throw new Error(
      `The message suites need NATS with JetStream at ${NATS_URL} (${(error as Error).message}). ` +
        'Start it (nats-server -js), set NATS_URL, or run `bash .ci/run`, which installs and starts it.',
      { cause: error },
    );
  }
}
