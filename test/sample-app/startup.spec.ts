import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { DATABASE_URL, sql } from '../support/database';
import { freePort } from '../support/free-port';
import { send } from '../support/http';
import { dropPrefix, eventually, OwnRedis, uniquePrefix } from '../support/redis';
import { stripeDelivery } from '../support/webhook-signing';

const MAIN = join(__dirname, '../../dist/sample-app/src/main.js');
/** Generous bounds for a loaded 2-core machine: what they catch is a start that never ends, or a shutdown that hangs. */
const EXIT_BOUND_MS = 45_000;
const RELAY_WARNING = /WARN \[Idempotency\] Outbox relay failed; rows stay unsent and are retried: Redis did not answer/;

/** The sample shop in a process of its own, with everything it prints on stdout and stderr (where errors go). */
interface Shop {
  process: ChildProcess;
  output(): string;
  /** Resolves with the exit code (or the signal) once it exits. */
  exit: Promise<number | NodeJS.Signals | null>;
  /** The port it listens on, once it says so; rejects if it exits first. */
  listening: Promise<string>;
  url(): string;
}

function runShop(env: Record<string, string>): Shop {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run "npm run build" first (npm test does).`);
  const child = spawn(process.execPath, [MAIN], { env: { ...process.env, PORT: '0', NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  let port = '';
  const exit = new Promise<number | NodeJS.Signals | null>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal)));
  const listening = new Promise<string>((resolve, reject) => {
    const read = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on http:\/\/[^:]+:(\d+)/.exec(output);
      if (match) resolve((port = match[1]));
    };
    child.stdout.on('data', read);
    child.stderr.on('data', read);
    void exit.then((code) => reject(new Error(`the shop exited with ${code} before listening:\n${output}`)));
  });
  // A shop expected to exit never listens: its rejection is for those who wait for it, not an unhandled one.
  listening.catch(() => undefined);
  return { process: child, output: () => output, exit, listening, url: () => `http://127.0.0.1:${port}` };
}

async function stop(shop: Shop | undefined): Promise<void> {
  if (!shop || shop.process.exitCode !== null || shop.process.signalCode !== null) return;
  shop.process.kill('SIGKILL');
  await shop.exit;
}

/** Within `ms`, or `'still running'`: an exit that never comes fails the assertion instead of the suite's timeout. */
const within = <T>(ms: number, what: Promise<T>) =>
  Promise.race([what, new Promise<'still running'>((resolve) => setTimeout(() => resolve('still running'), ms).unref())]);

/** The suites' PostgreSQL as the standard PG* variables the shop reads when DATABASE_URL is unset or empty. */
function pgVariables(database: string): Record<string, string> {
  const url = new URL(DATABASE_URL);
  return {
    PGHOST: url.hostname,
    PGPORT: url.port || '5432',
    PGUSER: decodeURIComponent(url.username) || 'postgres',
    PGPASSWORD: decodeURIComponent(url.password),
    PGDATABASE: database,
  };
}

function databaseUrl(database: string): string {
  const url = new URL(DATABASE_URL);
  url.pathname = `/${database}`;
  return url.href;
}

async function count(database: string, table: string): Promise<number> {
  const client = new Client({ connectionString: databaseUrl(database) });
  await client.connect();
  try {
    return Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0].n);
  } finally {
    await client.end();
  }
}

const order = (shop: Shop) => send(shop.url(), '/orders', { key: randomUUID(), body: { sku: 'widget', quantity: 1 } });
const checkout = (shop: Shop, session: string) => {
  const event = {
    id: `evt_${randomUUID()}`,
    type: 'checkout.session.completed',
    created: 1,
    data: { object: { id: session, object: 'checkout.session', metadata: { sku: 'widget', quantity: '1' } } },
  };
  const delivery = stripeDelivery(event, 'whsec_local_stripe_secret');
  return send(shop.url(), '/webhooks/stripe', { body: delivery.body, headers: delivery.headers });
};

/** How the sample shop starts, by what DATABASE_URL and REDIS_URL say and what answers there. */
describe('the sample shop starting', () => {
  const databases: string[] = [];
  const prefixes: string[] = [];
  let shop: Shop | undefined;
  const freshDatabase = async () => {
    const database = `shop_start_${randomUUID().slice(0, 8)}`;
    await sql(`CREATE DATABASE ${database}`);
    databases.push(database);
    return database;
  };
  const prefix = () => {
    const made = uniquePrefix('shop_start');
    prefixes.push(made);
    return made;
  };

  afterEach(() => stop(shop));
  afterAll(async () => {
    for (const database of databases) await sql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    for (const made of prefixes) await dropPrefix(made);
  });

  it('uses the local PostgreSQL when DATABASE_URL is empty and one answers there (PG* variables give its parts)', async () => {
    const database = await freshDatabase();
    shop = runShop({ DATABASE_URL: '', ...pgVariables(database), QUEUE_PREFIX: prefix() });
    await shop.listening;
    expect(shop.output()).toMatch(
      new RegExp(` LOG \\[SampleApp\\] Database: PostgreSQL at postgres://[^ ]+/${database} \\(DATABASE_URL is empty: the local default\\)`),
    );
    expect((await order(shop)).status).toBe(201);
    expect(await count(database, 'orders')).toBe(1);
  });

  it('runs without RabbitMQ: one WARN says the order.shipped events are not consumed, and the shop serves the rest', async () => {
    const database = await freshDatabase();
    const port = await freePort();
    shop = runShop({ DATABASE_URL: databaseUrl(database), QUEUE_PREFIX: prefix(), RABBITMQ_URL: `amqp://guest:guest@127.0.0.1:${port}` });
    await shop.listening;
    const warnings = shop
      .output()
      .split('\n')
      .filter((line) => line.includes('WARN') && line.includes('RabbitMQ'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      new RegExp(
        `WARN \\[SampleApp\\] Shipping: RabbitMQ at amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:${port} does not answer \\(.+\\); order\\.shipped events are not consumed, the rest runs`,
      ),
    );
    expect(shop.output()).not.toMatch(/ERROR/);
    expect((await order(shop)).status).toBe(201);
    expect(await count(database, 'orders')).toBe(1);
  });

  it('exits with 1 when DATABASE_URL does not answer, after a bounded retry, naming the URL without its password', async () => {
    const port = await freePort();
    const url = `postgres://shop:s3cret-pw@127.0.0.1:${port}/shop`;
    shop = runShop({ DATABASE_URL: url });
    expect(await within(EXIT_BOUND_MS, shop.exit)).toBe(1);
    const output = shop.output();
    expect(output).toContain(`WARN [SampleApp] PostgreSQL at postgres://shop:***@127.0.0.1:${port}/shop (DATABASE_URL) does not answer`);
    expect(output).toMatch(
      new RegExp(
        `ERROR \\[SampleApp\\] Cannot start: no PostgreSQL answered within 10 s at postgres://shop:\\*\\*\\*@127\\.0\\.0\\.1:${port}/shop \\(DATABASE_URL\\)`,
      ),
    );
    expect(output).toContain('never falls back to the in-memory PGlite');
    expect(output).not.toContain('s3cret-pw');
    expect(output).not.toMatch(/Database: |listening on/);
  });

  it('refuses a DATABASE_URL that is not a URL, without echoing it', async () => {
    shop = runShop({ DATABASE_URL: 'host=db password=s3cret-pw' });
    expect(await within(EXIT_BOUND_MS, shop.exit)).toBe(1);
    expect(shop.output()).toContain('ERROR [SampleApp] Cannot start: DATABASE_URL is not a URL');
    expect(shop.output()).not.toContain('s3cret-pw');
  });

  describe('with Redis down', () => {
    let redis: OwnRedis;
    beforeAll(async () => {
      // A port of its own that Redis can come back on.
      redis = await OwnRedis.start();
      await redis.kill();
    });
    afterAll(() => redis.kill());

    it('serves requests, says once that jobs wait in the outbox, logs no error, and stops at once on SIGTERM', async () => {
      const database = await freshDatabase();
      shop = runShop({ DATABASE_URL: databaseUrl(database), REDIS_URL: redis.url, QUEUE_PREFIX: prefix() });
      await shop.listening;
      expect((await order(shop)).status).toBe(201);
      expect((await checkout(shop, `cs_${randomUUID().slice(0, 8)}`)).status).toBe(200);
      await eventually('the relay has tried and given up once', () => Promise.resolve(RELAY_WARNING.test(shop?.output() ?? '')), EXIT_BOUND_MS);
      const output = shop.output();
      const warnings = output.match(/WARN \[Fulfilment\] Redis at redis:\/\/127\.0\.0\.1:\d+ \(REDIS_URL\) does not answer/g) ?? [];
      expect(warnings).toHaveLength(1);
      expect(output).toContain('fulfilment jobs wait in the outbox table until Redis answers');
      expect(output).not.toMatch(/ERROR|\n\s+at /);
      expect(await count(database, 'idempotency_outbox WHERE sent_at IS NULL')).toBe(1);

      shop.process.kill('SIGTERM');
      expect(await within(EXIT_BOUND_MS, shop.exit)).toBe('SIGTERM');
      expect(shop.output()).not.toMatch(/ERROR|\n\s+at /);
    });

    it('sends the jobs that waited once Redis answers, and stops at once on SIGTERM when it goes away again', async () => {
      const database = await freshDatabase();
      shop = runShop({ DATABASE_URL: databaseUrl(database), REDIS_URL: redis.url, QUEUE_PREFIX: prefix() });
      await shop.listening;
      const session = `cs_${randomUUID().slice(0, 8)}`;
      expect((await checkout(shop, session)).status).toBe(200);
      await redis.restart();
      await eventually('the waiting job has run', async () => (await count(database, 'receipts')) === 1, EXIT_BOUND_MS);
      expect(shop.output()).toMatch(/LOG \[Fulfilment\] Redis at redis:\/\/127\.0\.0\.1:\d+ \(REDIS_URL\) answers again/);
      expect(await count(database, 'idempotency_outbox WHERE processed_at IS NOT NULL')).toBe(1);

      await redis.kill();
      await eventually('the worker has seen Redis go', () => Promise.resolve((shop?.output().match(/does not answer/g) ?? []).length === 2), EXIT_BOUND_MS);
      shop.process.kill('SIGTERM');
      expect(await within(EXIT_BOUND_MS, shop.exit)).toBe('SIGTERM');
    });
  });
});
