import { randomUUID } from 'node:crypto';
import { createSchema, dropSchema, sql } from '../support/database';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';
import { githubDelivery, handSignedDelivery, type SignedRequest, standardDelivery, stripeDelivery } from '../support/webhook-signing';
import { BatchController, HAND_CHECKED_PROVIDERS, providerControllers, SECRETS, WebhooksController } from '../support/webhooks.controller';

const FORGED = 'whsec_' + Buffer.from('an-attacker-guessing-the-secret!').toString('base64');

describe.each(PLATFORMS)('webhook signatures, checked before the claim (%s)', (platform) => {
  let schema: string;
  let app: TestApp;

  beforeAll(async () => {
    schema = await createSchema(`signatures_${platform}`);
    app = await startApp(platform, {
      schema,
      controllers: [WebhooksController, BatchController, ...providerControllers],
      idempotency: { webhooks: { github: { secret: [SECRETS.current, SECRETS.previous] } } },
    });
  });

  afterAll(async () => {
    await app?.close();
    await dropSchema(schema);
  });

  const deliver = (path: string, delivery: SignedRequest) => send(app.url, path, { body: delivery.body, headers: delivery.headers });
  const records = async (key: string) =>
    (await sql<{ count: number }>(`SELECT count(*)::int AS count FROM "${schema}".idempotency_records WHERE key = $1`, [key]))[0].count;

  /** The three providers signed by their own libraries: how each signs a delivery of event `id`. */
  const official: Array<[string, string, (id: string, secret: string, age?: number) => Promise<SignedRequest> | SignedRequest]> = [
    ['stripe', '/hooks/stripe', (id, secret, age = 0) => stripeDelivery({ id, type: 'charge.succeeded' }, secret, Math.floor(Date.now() / 1000) - age)],
    ['github', '/hooks/github', (id, secret) => githubDelivery({ action: 'opened', delivery: id }, secret, id)],
    ['standard', '/hooks/standard', (id, secret, age = 0) => standardDelivery({ id, type: 'invoice.paid' }, secret, id, new Date(Date.now() - age * 1000))],
  ];

  describe.each(official)('%s', (label, path, sign) => {
    it('runs a signed delivery once; its retry replays the answer', async () => {
      const id = `evt_${randomUUID()}`;
      const delivery = await sign(id, SECRETS.current);
      const first = await deliver(path, delivery);
      const retry = await deliver(path, await sign(id, SECRETS.current));
      expect(first.status).toBe(200);
      expect(retry.status).toBe(200);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(retry.text).toBe(first.text);
      expect(await app.effects(`${label}:${id}`)).toBe(1);
    });

    it('accepts the secret being rotated out', async () => {
      const id = `evt_${randomUUID()}`;
      expect((await deliver(path, await sign(id, SECRETS.previous))).status).toBe(200);
      expect(await app.effects(`${label}:${id}`)).toBe(1);
    });

    it('refuses a forged, tampered or unsigned delivery with 400, leaving no record', async () => {
      const id = `evt_${randomUUID()}`;
      const forged = await deliver(path, await sign(id, FORGED));
      expect(forged.status).toBe(400);
      expect(forged.headers.get('content-type')).toContain('application/problem+json');
      expect(forged.json()).toMatchObject({ status: 400, code: 'WEBHOOK_SIGNATURE_INVALID' });

      const genuine = await sign(id, SECRETS.current);
      const tampered = await deliver(path, { ...genuine, body: genuine.body.replace('}', ',"amount":1}') });
      expect(tampered.status).toBe(400);

      const unsigned = await send(app.url, path, {
        body: genuine.body,
        headers: { 'content-type': 'application/json', 'x-github-delivery': id, 'webhook-id': id },
      });
      expect(unsigned.json()).toMatchObject({ code: 'WEBHOOK_SIGNATURE_INVALID' });
      expect(await records(id)).toBe(0);
      expect(await app.effects(`${label}:${id}`)).toBe(0);
    });

    it('lets the real event through after a forged one carrying its id', async () => {
      const id = `evt_${randomUUID()}`;
      expect((await deliver(path, await sign(id, FORGED))).status).toBe(400);
      const real = await deliver(path, await sign(id, SECRETS.current));
      expect(real.status).toBe(200);
      expect(real.headers.get('idempotent-replayed')).toBeNull();
      expect(await app.effects(`${label}:${id}`)).toBe(1);
    });
  });

  it.each([
    ['stripe', official[0]],
    ['standard', official[2]],
  ] as const)('refuses a %s delivery signed too long ago (replay protection)', async (_label, [label, path, sign]) => {
    const id = `evt_${randomUUID()}`;
    const stale = await deliver(path, await sign(id, SECRETS.current, 600));
    expect(stale.status).toBe(400);
    expect(stale.json()).toMatchObject({ code: 'WEBHOOK_SIGNATURE_INVALID' });
    expect(await records(id)).toBe(0);
    expect(await app.effects(`${label}:${id}`)).toBe(0);
  });

  it('refuses a stripe delivery signed 10 minutes in the future', async () => {
    const id = `evt_${randomUUID()}`;
    const answer = await deliver('/hooks/stripe', stripeDelivery({ id }, SECRETS.current, Math.floor(Date.now() / 1000) + 600));
    expect(answer.status).toBe(400);
    expect(await records(id)).toBe(0);
  });

  describe.each(HAND_CHECKED_PROVIDERS)('%s', (provider) => {
    const path = `/hooks/${provider}`;

    it('runs a signed delivery once, and refuses a forged one without a record', async () => {
      const id = `ev-${randomUUID()}`;
      const before = await app.effects(provider);
      expect((await deliver(path, handSignedDelivery(provider, FORGED, id))).status).toBe(400);
      const first = await deliver(path, handSignedDelivery(provider, SECRETS.current, id));
      const retry = await deliver(path, handSignedDelivery(provider, SECRETS.previous, id));
      expect(first.status).toBe(200);
      expect(retry.status).toBe(200);
      expect(retry.headers.get('idempotent-replayed')).toBe('true');
      expect(await app.effects(provider)).toBe(before + 1);
    });

    it('refuses a delivery without its signature', async () => {
      const { body, headers } = handSignedDelivery(provider, SECRETS.current, `ev-${randomUUID()}`);
      const unsigned = Object.fromEntries(Object.entries(headers).filter(([name]) => !/signature|hmac|token$|sig$/.test(name)));
      const answer = await send(app.url, path, { body, headers: unsigned });
      expect(answer.status).toBe(400);
      expect(answer.json()).toMatchObject({ code: 'WEBHOOK_SIGNATURE_INVALID' });
    });
  });

  it('refuses a PayPal delivery whose certificate is not on a PayPal host', async () => {
    const delivery = handSignedDelivery('paypal', SECRETS.current, `WH-${randomUUID()}`);
    for (const certUrl of ['https://evil.example.com/cert.pem', 'http://api.paypal.com/v1/certs/x', 'https://api.paypal.com.evil.io/c']) {
      const answer = await deliver('/hooks/paypal', { ...delivery, headers: { ...delivery.headers, 'paypal-cert-url': certUrl } });
      expect(answer.status).toBe(400);
    }
  });

  it.each(['svix', 'paddle', 'slack', 'linear', 'paypal'])('refuses a %s delivery signed 10 minutes ago', async (provider) => {
    const answer = await deliver(`/hooks/${provider}`, handSignedDelivery(provider, SECRETS.current, `ev-${randomUUID()}`, { age: 600 }));
    expect(answer.status).toBe(400);
  });

  it.each(['/hooks/stripe', '/hooks/github', '/hooks/standard', '/hooks/shopify', '/hooks/twilio', '/hooks/linear'])(
    'refuses an empty form body and malformed signatures at %s with 400, not 500',
    async (path) => {
      const odd = {
        'stripe-signature': 't=abc,v1=zz',
        'x-hub-signature-256': 'sha256=not-hex',
        'webhook-id': 'm',
        'webhook-timestamp': 'soon',
        'webhook-signature': 'v1,@@',
        'x-shopify-hmac-sha256': '!!',
        'x-twilio-signature': '',
        'linear-signature': 'q',
      };
      const empty = await send(app.url, path, { body: '', headers: { 'content-type': 'application/x-www-form-urlencoded', ...odd } });
      expect(empty.status).toBe(400);
      const json = await send(app.url, path, { body: '{"id":"evt_x","data":[1]}', headers: { 'content-type': 'application/json', ...odd } });
      expect(json.status).toBe(400);
      expect(json.json()).toMatchObject({ code: 'WEBHOOK_SIGNATURE_INVALID' });
    },
  );

  it('refuses a body of a type no parser reads (no raw body to check) with 400, not 500', async () => {
    const answer = await send(app.url, '/hooks/stripe', { body: 'id=evt_1', headers: { 'content-type': 'text/plain', 'stripe-signature': 't=1,v1=00' } });
    expect(answer.status).toBe(400);
    expect(answer.json()).toMatchObject({ code: 'WEBHOOK_SIGNATURE_INVALID' });
  });
});
