import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { type ChildApp, startCompiled } from '../support/child-app';
import { DATABASE_URL, sql } from '../support/database';
import { freePort } from '../support/free-port';
import { send } from '../support/http';
import { dropPrefix, uniquePrefix } from '../support/redis';

/** A charge request as it went from the shop to the provider, and what the provider answered. */
interface Forwarded {
  key: string | undefined;
  status: number;
  replayed: string | null;
  body: string;
}

/**
 * Sits between the shop and its payment provider. Armed, it passes the next charge to the provider and keeps the
 * provider's answer from the shop: the charge is made, and the shop waits for an answer that never comes.
 */
class WithholdingProxy {
  readonly forwarded: Forwarded[] = [];
  private server!: Server;
  private armed?: () => void;

  constructor(private readonly target: () => string) {}

  async start(): Promise<string> {
    this.server = createServer((request, response) => {
      this.forward(request).then(
        (answer) => {
          if (this.armed) {
            const charged = this.armed;
            this.armed = undefined;
            return charged();
          }
          response.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8' }).end(answer.body);
        },
        // The provider did not answer: the shop sees a gateway error, as it would from a real one.
        (error: Error) => response.writeHead(502).end(error.message),
      );
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as { port: number }).port}`;
  }

  /** Resolves once the provider answered the next charge, which the shop then never gets. */
  withholdNext(): Promise<void> {
    return new Promise((resolve) => (this.armed = resolve));
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private async forward(request: IncomingMessage): Promise<Forwarded> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const key = request.headers['idempotency-key'] as string | undefined;
    const reply = await fetch(`${this.target()}${request.url}`, {
      method: request.method,
      headers: { 'content-type': 'application/json', ...(key === undefined ? {} : { 'idempotency-key': key }) },
      body: Buffer.concat(chunks),
    });
    const answer = { key, status: reply.status, replayed: reply.headers.get('idempotent-replayed'), body: await reply.text() };
    this.forwarded.push(answer);
    return answer;
  }
}

/**
 * The sample shop pays an order at its payment provider (another process of the sample), and dies after the
 * charge was made and before its own answer was stored. The client's retry, once the dead attempt's lease ran
 * out, must not charge again: the shop sends the provider the same key, derived from its claim.
 */
describe('the sample shop paying an order at its payment provider', () => {
  const database = `shop_${randomUUID().slice(0, 8)}`;
  const prefix = uniquePrefix('charge');
  const apps: ChildApp[] = [];
  let provider: ChildApp;
  let proxy: WithholdingProxy;
  let proxyUrl: string;

  const start = async (env: Record<string, string>) => {
    const app = await startCompiled(
      'dist/sample-app/src/main.js',
      { DATABASE_URL: databaseUrl(), PORT: String(await freePort()), QUEUE_PREFIX: prefix, NO_COLOR: '1', ...env },
      /listening on http:\/\/[^:]+:(\d+)/,
    );
    apps.push(app);
    return app;
  };
  const databaseUrl = () => {
    const url = new URL(DATABASE_URL);
    url.pathname = `/${database}`;
    return url.toString();
  };
  /** The charges the provider made for `reference`. */
  const charges = async (reference: string) => {
    const client = new Client({ connectionString: databaseUrl() });
    await client.connect();
    try {
      return (await client.query<{ count: number }>('SELECT count(*)::int AS count FROM provider_charges WHERE reference = $1', [reference])).rows[0].count;
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    await sql(`CREATE DATABASE ${database}`);
    provider = await start({});
    proxy = new WithholdingProxy(() => provider.url);
    proxyUrl = await proxy.start();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill()));
    await proxy?.stop();
    await sql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await dropPrefix(prefix);
  });

  it('charges once when the shop is killed after the charge, before its answer is stored, and the client retries', async () => {
    const shop = await start({ PAYMENT_PROVIDER_URL: proxyUrl });
    const placed = await send(shop.url, '/orders', { key: randomUUID(), body: { sku: 'widget', quantity: 2 } });
    expect(placed.status).toBe(201);
    const orderId = placed.json<{ order: { id: number } }>().order.id;
    const reference = `order-${orderId}`;
    const payKey = randomUUID();

    const charged = proxy.withholdNext();
    const lost = send(shop.url, `/orders/${orderId}/pay`, { key: payKey }).then(
      () => 'answered',
      () => 'connection lost',
    );
    await charged;
    await shop.kill();
    expect(await lost).toBe('connection lost');
    expect(await charges(reference)).toBe(1);

    // Another shop process; the dead attempt's claim answers 409 until its lease (5 s) runs out.
    const restarted = await start({ PAYMENT_PROVIDER_URL: proxyUrl });
    let retry = await send(restarted.url, `/orders/${orderId}/pay`, { key: payKey });
    for (const deadline = Date.now() + 30_000; retry.status === 409 && Date.now() < deadline;) {
      await sleep(200);
      retry = await send(restarted.url, `/orders/${orderId}/pay`, { key: payKey });
    }
    expect(retry.status).toBe(201);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
    expect(await charges(reference)).toBe(1);

    // The provider was asked twice, with one key, and answered the second time with the first charge.
    const [first, second] = proxy.forwarded;
    expect(proxy.forwarded).toHaveLength(2);
    expect(second.key).toBe(first.key);
    expect([first.status, first.replayed, second.status, second.replayed]).toEqual([201, null, 201, 'true']);
    expect(retry.json()).toMatchObject({ order: { id: orderId, paid: true }, charge: JSON.parse(first.body) as object });
  }, 60_000);
});
