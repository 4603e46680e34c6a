import type { LoggerService } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { idempotencyKeyHash, type IdempotencyOutcome, type IdempotencyOutcomeMessage, onIdempotencyOutcome } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { EffectsController } from '../support/effects.controller';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';
import { TcpProxy } from '../support/tcp-proxy';
import { stripeDelivery } from '../support/webhook-signing';
import { ResourceState, SECRETS, WebhooksController } from '../support/webhooks.controller';

/** `expect.any()` is typed `any`; as `unknown` it fits the expected objects without unsafe assignments. */
const anyNumber: unknown = expect.any(Number);

/** Every line the app logs, level first, with its arguments as they were given (stack, context). */
class CapturedLogs implements LoggerService {
  readonly lines: string[] = [];
  log = (...args: unknown[]) => this.push('log', args);
  error = (...args: unknown[]) => this.push('error', args);
  warn = (...args: unknown[]) => this.push('warn', args);
  debug = (...args: unknown[]) => this.push('debug', args);
  verbose = (...args: unknown[]) => this.push('verbose', args);
  fatal = (...args: unknown[]) => this.push('fatal', args);

  private push(level: string, args: unknown[]): void {
    this.lines.push([level, ...args.map((arg) => (arg instanceof Error ? `${arg.message} ${arg.stack}` : String(arg)))].join(' '));
  }
}

/** What the library publishes on its diagnostics channel and logs, for real requests. */
describe.each(PLATFORMS)('outcomes published and logged on %s', (platform) => {
  let schema: string;
  let proxy: TcpProxy;
  let t: TestApp;
  let stop: () => void;
  const logs = new CapturedLogs();
  const messages: IdempotencyOutcomeMessage[] = [];
  /** Keys, bodies and tenants sent: none may show in a message or a log line. */
  const secrets: string[] = [];
  const secret = (prefix = '') => {
    const value = `${prefix}${randomUUID()}`;
    secrets.push(value);
    return value;
  };
  const published = (scope: string, key: string) => messages.filter((message) => message.keyHash === idempotencyKeyHash(scope, key));
  const outcomes = (scope: string, key: string) => published(scope, key).map((message) => message.outcome);
  const one = (scope: string, key: string, outcome: IdempotencyOutcome) => {
    const found = published(scope, key).filter((message) => message.outcome === outcome);
    expect(found).toHaveLength(1);
    return found[0];
  };

  beforeAll(async () => {
    schema = await createSchema(`observability_${platform}`);
    const target = new URL(DATABASE_URL);
    proxy = await TcpProxy.open({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(DATABASE_URL);
    viaProxy.port = String(proxy.port);
    t = await startApp(platform, {
      schema,
      databaseUrl: viaProxy.toString(),
      logger: logs,
      controllers: [EffectsController, WebhooksController],
      entities: [ResourceState],
    });
    stop = onIdempotencyOutcome((message) => messages.push(message));
  });
  afterAll(async () => {
    stop?.();
    await t?.close();
    await proxy?.stop();
    await dropSchema(schema);
  });

  it('claimed, then replayed: the route, a hash of the key, the attempt, the status and the time added', async () => {
    const key = secret();
    const body = { label: secret() };
    expect((await send(t.url, '/t/basic', { key, body })).status).toBe(201);
    expect((await send(t.url, '/t/basic', { key, body })).headers.get('idempotent-replayed')).toBe('true');
    const keyHash = idempotencyKeyHash('POST /t/basic', key);
    expect(published('POST /t/basic', key)).toEqual([
      { outcome: 'claimed', route: 'POST /t/basic', keyHash, attempt: 1, status: 201, addedMs: anyNumber },
      { outcome: 'replayed', route: 'POST /t/basic', keyHash, status: 201, addedMs: anyNumber },
    ]);
    expect(keyHash).toMatch(/^[0-9a-f]{16}$/);
    expect(logs.lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          new RegExp(`^debug POST /t/basic key ${keyHash}: claimed, answer stored \\(attempt 1, status 201, [\\d.]+ ms added\\)\\. Idempotency$`),
        ),
        expect.stringMatching(new RegExp(`^debug POST /t/basic key ${keyHash}: replayed the stored answer`)),
      ]),
    );
  });

  it('rejected in flight: a duplicate while the first runs gets 409', async () => {
    const key = secret();
    const body = { label: secret(), ms: 600 };
    const first = send(t.url, '/t/basic', { key, body });
    await sleep(200);
    expect((await send(t.url, '/t/basic', { key, body })).status).toBe(409);
    await first;
    expect(outcomes('POST /t/basic', key)).toEqual(['rejected-in-flight', 'claimed']);
    expect(one('POST /t/basic', key, 'rejected-in-flight')).toMatchObject({ status: 409, addedMs: anyNumber });
  });

  it.each([
    ['onInFlight: wait', '/t/wait'],
    ['transaction mode', '/t/tx'],
  ])('waited (%s): a duplicate waits for the first, then gets its answer', async (_mode, path) => {
    const key = secret();
    const body = { label: secret(), ms: 500 };
    const first = send(t.url, path, { key, body });
    await sleep(150);
    const duplicate = await send(t.url, path, { key, body });
    expect(duplicate.headers.get('idempotent-replayed')).toBe('true');
    await first;
    expect(outcomes(`POST ${path}`, key).sort()).toEqual(['claimed', 'replayed', 'waited']);
    const waited = one(`POST ${path}`, key, 'waited');
    expect(waited.waitedMs).toBeGreaterThan(100);
    expect(waited.addedMs).toBeUndefined(); // on the answer that follows it
    expect(one(`POST ${path}`, key, 'replayed').addedMs).toBeGreaterThanOrEqual(waited.waitedMs!);
  });

  it('key reused: the same key with another body gets 422', async () => {
    const key = secret();
    await send(t.url, '/t/basic', { key, body: { label: secret() } });
    expect((await send(t.url, '/t/basic', { key, body: { label: secret() } })).status).toBe(422);
    expect(outcomes('POST /t/basic', key)).toEqual(['claimed', 'key-reused']);
    expect(one('POST /t/basic', key, 'key-reused')).toMatchObject({ status: 422 });
    expect(logs.lines).toContainEqual(
      expect.stringMatching(
        new RegExp(`^log POST /t/basic key ${idempotencyKeyHash('POST /t/basic', key)}: refused, the key was used for a different request`),
      ),
    );
  });

  it('released: a failed handler gives the key back, and the retry claims it again', async () => {
    const key = secret();
    const body = { label: secret() };
    expect((await send(t.url, '/t/crash', { key, body })).status).toBe(500);
    expect((await send(t.url, '/t/status', { key, body: { ...body, status: 503 } })).status).toBe(503);
    expect(published('POST /t/crash', key)).toEqual([expect.objectContaining({ outcome: 'released', attempt: 1, status: 500, addedMs: anyNumber })]);
    expect(published('POST /t/status', key)).toEqual([expect.objectContaining({ outcome: 'released', status: 503 })]);
  });

  it('stale event skipped, on an ordered route', async () => {
    const subscription = secret('sub_');
    const event = (id: string, created: number) => ({
      id,
      type: 'customer.subscription.updated',
      created,
      data: { object: { id: subscription, status: 'active' } },
    });
    const [newer, older] = [secret('evt_'), secret('evt_')];
    for (const [id, created] of [
      [newer, 2000],
      [older, 1000],
    ] as const) {
      const delivery = stripeDelivery(event(id, created), SECRETS.current);
      await send(t.url, '/hooks/subscriptions', { body: delivery.body, headers: delivery.headers });
    }
    const scope = 'stripe:POST /hooks/subscriptions';
    expect(outcomes(scope, newer)).toEqual(['claimed']);
    expect(published(scope, older)).toEqual([expect.objectContaining({ outcome: 'stale-skipped', route: scope, status: 200 })]);
  });

  it('leaves the tenant out of the route, and keeps it in the hash', async () => {
    const [eventId, tenant] = [secret(), secret('tenant-')];
    await send(t.url, '/t/custom', { body: { label: secret(), eventId }, headers: { 'x-tenant': tenant } });
    expect(published(`POST /t/custom#${tenant}`, eventId)).toEqual([expect.objectContaining({ outcome: 'claimed', route: 'POST /t/custom' })]);
  });

  it('publishes the outcomes of IdempotencyService.run(), without HTTP statuses', async () => {
    const [key, scope] = [secret(), `jobs#${secret('tenant-')}`];
    await expect(t.service.run(key, () => Promise.reject(new Error('flaky')), { scope })).rejects.toThrow('flaky');
    await t.service.run(key, () => 'done', { scope });
    await t.service.run(key, () => 'again', { scope });
    expect(published(scope, key)).toEqual([
      expect.objectContaining({ outcome: 'released', route: 'jobs', attempt: 1 }),
      expect.objectContaining({ outcome: 'claimed', route: 'jobs', attempt: 1 }),
      expect.objectContaining({ outcome: 'replayed', route: 'jobs' }),
    ]);
    expect(published(scope, key).some((message) => 'status' in message)).toBe(false);
  });

  it('lease taken over, and the late first attempt fenced', async () => {
    const key = secret();
    const first = send(t.url, '/t/lease-any', { key, body: { label: secret(), ms: 2500 } });
    await sleep(1300); // past the first attempt's 1s lease, which this route does not renew
    expect((await send(t.url, '/t/lease-any', { key, body: { label: secret(), ms: 100 } })).status).toBe(201);
    expect((await first).status).toBe(201);
    expect(published('POST /t/lease-any', key)).toEqual([
      expect.objectContaining({ outcome: 'lease-taken-over', attempt: 2 }),
      expect.objectContaining({ outcome: 'claimed', attempt: 2, status: 201 }),
      expect.objectContaining({ outcome: 'completion-fenced', attempt: 1, status: 201, addedMs: anyNumber }),
    ]);
    const keyHash = idempotencyKeyHash('POST /t/lease-any', key);
    expect(logs.lines).toEqual(
      expect.arrayContaining([
        expect.stringMatching(new RegExp(`^warn POST /t/lease-any key ${keyHash}: lease ran out; this attempt takes the claim over \\(attempt 2\\)`)),
        expect.stringMatching(new RegExp(`^warn POST /t/lease-any key ${keyHash}: late completion fenced`)),
      ]),
    );
  });

  it('store unavailable: 503, published and logged as an error', async () => {
    const key = secret();
    await proxy.stop();
    try {
      expect((await send(t.url, '/t/basic', { key, body: { label: secret() } })).status).toBe(503);
    } finally {
      await proxy.start();
    }
    expect(published('POST /t/basic', key)).toEqual([expect.objectContaining({ outcome: 'store-unavailable', status: 503, addedMs: anyNumber })]);
    expect(logs.lines).toContainEqual(
      expect.stringMatching(new RegExp(`^error POST /t/basic key ${idempotencyKeyHash('POST /t/basic', key)}: idempotency store unavailable: .+`)),
    );
  });

  it('never shows a key, a body or a tenant in a message or a log line', () => {
    expect(messages.length).toBeGreaterThan(20);
    expect(logs.lines.filter((line) => line.includes('Idempotency')).length).toBeGreaterThan(20);
    const shown = [...messages.map((message) => JSON.stringify(message)), ...logs.lines];
    for (const value of secrets) expect(shown.filter((text) => text.includes(value))).toEqual([]);
  });
});
