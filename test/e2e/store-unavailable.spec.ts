import { randomUUID } from 'node:crypto';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';
import { TcpProxy } from '../support/tcp-proxy';

describe.each(PLATFORMS)('an unreachable store on %s', (platform) => {
  let schema: string;
  let proxy: TcpProxy;
  let t: TestApp;

  beforeAll(async () => {
    schema = await createSchema(`down_${platform}`);
    const target = new URL(DATABASE_URL);
    proxy = await TcpProxy.open({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(DATABASE_URL);
    viaProxy.port = String(proxy.port);
    t = await startApp(platform, { schema, databaseUrl: viaProxy.toString() });
  });
  afterAll(async () => {
    await t?.close();
    await proxy?.stop();
    await dropSchema(schema);
  });

  it('answers 503 with Retry-After and does not run the handler, then recovers without a restart', async () => {
    const key = randomUUID();
    await proxy.stop();
    for (const path of ['/t/basic', '/t/tx', '/t/wait']) {
      const answer = await send(t.url, path, { key, body: { label: key } });
      expect(answer.status).toBe(503);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(answer.json()).toMatchObject({ status: 503, code: 'IDEMPOTENCY_STORE_UNAVAILABLE' });
    }
    expect(await t.effects(key)).toBe(0);

    await proxy.start();
    const recovered = await send(t.url, '/t/basic', { key, body: { label: key } });
    expect(recovered.status).toBe(201);
    expect(await t.effects(key)).toBe(1);
  });
});
