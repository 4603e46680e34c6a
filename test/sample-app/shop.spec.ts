import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import { type ChildApp, startCompiled } from '../support/child-app';
import { DATABASE_URL, sql } from '../support/database';
import { burst, send } from '../support/http';

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The sample shop, run as users run it (`node dist/sample-app/src/main.js`), on PostgreSQL and on PGlite. */
describe.each([
  ['PostgreSQL', true],
  ['the embedded PGlite fallback', false],
])('the sample shop on %s', (_name, postgres) => {
  const database = `shop_${randomUUID().slice(0, 8)}`;
  let shop: ChildApp;

  beforeAll(async () => {
    const url = new URL(DATABASE_URL);
    if (postgres) {
      await sql(`CREATE DATABASE ${database}`);
      url.pathname = `/${database}`;
    } else {
      url.port = String(await freePort()); // nothing answers there
    }
    shop = await startCompiled('dist/sample-app/src/main.js', { DATABASE_URL: url.toString(), PORT: String(await freePort()) }, /listening on http:\/\/[^:]+:(\d+)/);
  }, 60_000);
  afterAll(async () => {
    await shop?.kill();
    if (postgres) await sql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  });

  it('says which database it uses', () => {
    expect(shop.output()).toMatch(postgres ? /Database: PostgreSQL at/ : /Database: embedded PGlite/);
  });

  it('places an order once for concurrent duplicates and replays it, decrementing stock once', async () => {
    const key = randomUUID();
    const replies = await burst(postgres ? 50 : 10, () => send(shop.url, '/orders', { key, body: { sku: 'gadget', quantity: 3 } }));
    expect(new Set(replies.map((reply) => reply.status))).toEqual(new Set([201]));
    expect(new Set(replies.map((reply) => reply.text)).size).toBe(1);
    expect(replies.filter((reply) => reply.headers.get('idempotent-replayed') === 'true')).toHaveLength(replies.length - 1);
    const stock = (await send(shop.url, '/stock', { method: 'GET' })).json<Array<{ sku: string; stock: number }>>();
    expect(stock.find((product) => product.sku === 'gadget')?.stock).toBe(47);
    const orders = (await send(shop.url, '/orders', { method: 'GET' })).json<unknown[]>();
    expect(orders).toHaveLength(1);
  });

  it('refuses a malformed order without burning the key', async () => {
    const key = randomUUID();
    expect((await send(shop.url, '/orders', { key, body: { sku: 'gizmo' } })).status).toBe(400);
    expect((await send(shop.url, '/orders', { key, body: { sku: 'gizmo', quantity: 1 } })).status).toBe(201);
  });

  it('applies a redelivered payment event once', async () => {
    const event = { id: `evt_${randomUUID()}`, type: 'payment.succeeded', data: { orderId: 1, amount: 1200 } };
    const replies = await burst(postgres ? 50 : 10, () => send(shop.url, '/payments/webhook', { body: event }));
    expect(replies.every((reply) => reply.status === 200 || reply.status === 409)).toBe(true);
    expect((await send(shop.url, '/payments/webhook', { body: event })).headers.get('idempotent-replayed')).toBe('true');
    const payments = (await send(shop.url, '/payments', { method: 'GET' })).json<Array<{ eventId: string }>>();
    expect(payments.filter((payment) => payment.eventId === event.id)).toHaveLength(1);
  });
});
