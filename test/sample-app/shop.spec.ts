import { randomUUID } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';
import { type ChildApp, startCompiled } from '../support/child-app';
import { DATABASE_URL, sql } from '../support/database';
import { burst, send } from '../support/http';
import { dropPrefix, uniquePrefix } from '../support/redis';
import { githubDelivery, standardDelivery, stripeDelivery } from '../support/webhook-signing';

/** `expect.any()` is typed `any`; as `unknown` it fits the expected objects without unsafe assignments. */
const anyNumber: unknown = expect.any(Number);

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
  const prefix = uniquePrefix('shop');
  let shop: ChildApp;

  beforeAll(async () => {
    const url = new URL(DATABASE_URL);
    url.pathname = `/${database}`;
    if (postgres) await sql(`CREATE DATABASE ${database}`);
    // DATABASE_URL empty, and nothing answers at the local default (its port moved by PGPORT): the fallback.
    const where: Record<string, string> = postgres ? { DATABASE_URL: url.toString() } : { DATABASE_URL: '', PGPORT: String(await freePort()) };
    shop = await startCompiled(
      'dist/sample-app/src/main.js',
      { ...where, PORT: String(await freePort()), QUEUE_PREFIX: prefix, NO_COLOR: '1' },
      /listening on http:\/\/[^:]+:(\d+)/,
    );
  }, 60_000);
  afterAll(async () => {
    await shop?.kill();
    if (postgres) await sql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await dropPrefix(prefix);
  });

  it('says which database it uses', () => {
    expect(shop.output()).toMatch(postgres ? /LOG \[SampleApp\] Database: PostgreSQL at/ : /WARN \[SampleApp\] Database: embedded PGlite, IN MEMORY/);
  });

  it('answers GET /health with the idempotency store up', async () => {
    const reply = await send(shop.url, '/health', { method: 'GET' });
    expect(reply.status).toBe(200);
    expect(reply.json()).toMatchObject({ status: 'ok', info: { idempotency: { status: 'up', responseTime: anyNumber } } });
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

  it('serves Prometheus metrics at GET /metrics', async () => {
    // An unknown sku: a 404 answer, stored and replayed, that changes no stock and places no order.
    const key = randomUUID();
    for (let round = 0; round < 2; round++) expect((await send(shop.url, '/orders', { key, body: { sku: 'no-such-sku', quantity: 1 } })).status).toBe(404);
    const metrics = await send(shop.url, '/metrics', { method: 'GET' });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(metrics.text).toMatch(/^idempotency_outcomes_total\{outcome="claimed",route="POST \/orders"\} [1-9]\d*$/m);
    expect(metrics.text).toMatch(/^idempotency_added_seconds_count\{outcome="replayed",route="POST \/orders"\} [1-9]\d*$/m);
  });

  const stripe = (event: object, secret = 'whsec_local_stripe_secret') => {
    const delivery = stripeDelivery(event, secret);
    return send(shop.url, '/webhooks/stripe', { body: delivery.body, headers: delivery.headers });
  };
  const events = async () => (await send(shop.url, '/webhooks/events', { method: 'GET' })).json<Array<{ provider: string; eventId: string }>>();

  it('applies a Stripe payment delivered concurrently and again once; a forged delivery takes no effect and blocks nothing', async () => {
    const id = `evt_${randomUUID()}`;
    const event = {
      id,
      type: 'payment_intent.succeeded',
      created: 1,
      data: { object: { id: 'pi_1', object: 'payment_intent', amount: 1200, metadata: { orderId: '1' } } },
    };
    const replies = await burst(postgres ? 30 : 10, () => stripe(event));
    expect(new Set(replies.map((reply) => reply.status))).toEqual(new Set([200]));
    expect((await stripe(event)).headers.get('idempotent-replayed')).toBe('true');
    const payments = (await send(shop.url, '/payments', { method: 'GET' })).json<Array<{ eventId: string }>>();
    expect(payments.filter((payment) => payment.eventId === id)).toHaveLength(1);

    // A forged delivery carrying the next real event's id is refused and blocks nothing.
    const next = { ...event, id: `evt_${randomUUID()}` };
    expect((await stripe(next, 'whsec_wrong')).status).toBe(400);
    expect((await events()).filter((row) => row.eventId === next.id)).toHaveLength(0);
    const real = await stripe(next);
    expect(real.status).toBe(200);
    expect(real.headers.get('idempotent-replayed')).toBeNull();
    expect((await events()).filter((row) => row.eventId === next.id)).toHaveLength(1);
  });

  it('keeps the newest subscription state when an older event arrives late', async () => {
    const subscription = `sub_${randomUUID()}`;
    const update = (created: number, status: string) =>
      stripe({
        id: `evt_${randomUUID()}`,
        type: 'customer.subscription.updated',
        created,
        data: { object: { id: subscription, object: 'subscription', status } },
      });
    expect((await update(200, 'past_due')).status).toBe(200);
    expect((await update(100, 'active')).headers.get('idempotent-skipped')).toBe('stale-event');
    const subscriptions = (await send(shop.url, '/webhooks/subscriptions', { method: 'GET' })).json<Array<{ id: string; status: string }>>();
    expect(subscriptions.find((row) => row.id === subscription)?.status).toBe('past_due');
  });

  it('applies GitHub and Standard Webhooks deliveries once each', async () => {
    const guid = randomUUID();
    const github = await githubDelivery({ action: 'opened' }, 'local-github-secret', guid);
    const message = `msg_${randomUUID()}`;
    const standard = standardDelivery({ type: 'invoice.paid' }, 'whsec_bG9jYWwtc3RhbmRhcmQtd2ViaG9va3Mtc2VjcmV0', message);
    for (let round = 0; round < 2; round++) {
      expect((await send(shop.url, '/webhooks/github', { body: github.body, headers: github.headers })).status).toBe(200);
      expect((await send(shop.url, '/webhooks/standard', { body: standard.body, headers: standard.headers })).status).toBe(200);
    }
    const applied = await events();
    expect(applied.filter((row) => row.eventId === guid)).toEqual([expect.objectContaining({ provider: 'github' })]);
    expect(applied.filter((row) => row.eventId === message)).toEqual([expect.objectContaining({ provider: 'standard-webhooks' })]);
  });

  it('signs and sends its own trial deliveries (npm run sample:deliver)', () => {
    const output = execFileSync('node', ['dist/sample-app/src/deliver.js', shop.url], { encoding: 'utf8' });
    expect(output).toMatch(/payment_intent.succeeded, 20 at once\s+200, 19 x 200 idempotent-replayed: true\n/);
    expect(output).toMatch(/older, arrives late\)\s+200 idempotent-skipped: stale-event/);
    expect(output).toMatch(/wrong secret\s+400/);
    expect(output).toMatch(/is past_due/);
    expect(output).toMatch(/checkout.session.completed cs_\w+, 20 at once\s+200, 19 x 200 idempotent-replayed: true\n/);
    expect(output).toMatch(/GET \/receipts: 1 receipt for cs_\w+ \(shipped\)/);
  });

  it('places an order over GraphQL once for concurrent duplicates, replaying the same data marked in extensions', async () => {
    const key = randomUUID();
    const stockOf = async (sku: string) =>
      (await send(shop.url, '/stock', { method: 'GET' })).json<Array<{ sku: string; stock: number }>>().find((product) => product.sku === sku)?.stock;
    const before = await stockOf('widget');
    const query = 'mutation($sku: String!, $quantity: Int!) { placeOrder(sku: $sku, quantity: $quantity) { order { id sku createdAt } remainingStock } }';
    const place = (variables: Record<string, unknown>, withKey = key) =>
      send(shop.url, '/graphql', { key: withKey, body: { query, variables } }).then((reply) =>
        reply.json<{ data?: unknown; errors?: Array<{ extensions: { code: string } }>; extensions?: { idempotency: { replayed: boolean } } }>(),
      );
    const replies = await Promise.all(Array.from({ length: postgres ? 20 : 5 }, () => place({ sku: 'widget', quantity: 2 })));
    expect(new Set(replies.map((reply) => JSON.stringify(reply.data))).size).toBe(1);
    expect(replies.filter((reply) => reply.extensions?.idempotency.replayed)).toHaveLength(replies.length - 1);
    expect(await stockOf('widget')).toBe((before as number) - 2);
    // The same key with another quantity is refused; an unknown sku is a stored answer, replayed as it was.
    expect((await place({ sku: 'widget', quantity: 3 })).errors?.[0]?.extensions.code).toBe('IDEMPOTENCY_KEY_REUSED');
    const other = randomUUID();
    const unknown = await place({ sku: 'no-such-sku', quantity: 1 }, other);
    expect(unknown.errors).toHaveLength(1);
    expect(await place({ sku: 'no-such-sku', quantity: 1 }, other)).toEqual({
      ...unknown,
      extensions: { idempotency: { replayed: true, fields: { placeOrder: { replayed: true } } } },
    });
  });
});
