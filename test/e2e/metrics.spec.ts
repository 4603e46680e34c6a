import { randomUUID } from 'node:crypto';
import { register, Registry } from 'prom-client';
import { createSchema, dropSchema } from '../support/database';
import { startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';

/** The `metrics` option: prom-client metrics moved by real requests. */
describe('Prometheus metrics', () => {
  let schema: string;
  const apps: TestApp[] = [];
  const start = async (metrics: NonNullable<Parameters<typeof startApp>[1]['idempotency']>['metrics']) => {
    const app = await startApp('express', { schema, idempotency: { metrics } });
    apps.push(app);
    return app;
  };

  /** The value of a metric's series with these labels (`suffix` picks a histogram's `_count` or `_sum`). */
  const value = async (registry: Registry, name: string, labels: Record<string, string>, suffix = ''): Promise<number | undefined> => {
    const metric = (await registry.getMetricsAsJSON()).find((found) => found.name === name);
    const series = metric?.values.find(
      (entry) =>
        (entry as { metricName?: string }).metricName === (suffix ? `${name}${suffix}` : undefined) &&
        Object.entries(labels).every(([label, expected]) => entry.labels[label] === expected),
    );
    return series?.value;
  };

  beforeAll(async () => {
    schema = await createSchema('metrics');
  });
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });
  afterAll(async () => {
    await dropSchema(schema);
  });

  it('counts each outcome by route, and observes the time the library added', async () => {
    const registry = new Registry();
    const t = await start({ registry });
    const key = randomUUID();
    await send(t.url, '/t/basic', { key, body: { label: key } });
    await send(t.url, '/t/basic', { key, body: { label: key } });
    await send(t.url, '/t/basic', { key, body: { label: 'another body' } });

    const labels = (outcome: string) => ({ outcome, route: 'POST /t/basic' });
    expect(await value(registry, 'idempotency_outcomes_total', labels('claimed'))).toBe(1);
    expect(await value(registry, 'idempotency_outcomes_total', labels('replayed'))).toBe(1);
    expect(await value(registry, 'idempotency_outcomes_total', labels('key-reused'))).toBe(1);
    expect(await value(registry, 'idempotency_added_seconds', labels('claimed'), '_count')).toBe(1);
    expect(await value(registry, 'idempotency_added_seconds', labels('replayed'), '_count')).toBe(1);
    const added = await value(registry, 'idempotency_added_seconds', labels('claimed'), '_sum');
    expect(added).toBeGreaterThan(0);
    expect(added).toBeLessThan(5);
    expect(await registry.metrics()).toMatch(/^idempotency_added_seconds_bucket\{le="\+Inf",outcome="claimed",route="POST \/t\/basic"\} 1$/m);
  });

  it('counts once for two apps sharing a registry, and until the last one stops', async () => {
    const registry = new Registry();
    const [first, second] = [await start({ registry }), await start({ registry })];
    const claimed = () => value(registry, 'idempotency_outcomes_total', { outcome: 'claimed', route: 'POST /t/basic' });
    await send(first.url, '/t/basic', { key: randomUUID(), body: { label: 'shared' } });
    expect(await claimed()).toBe(1);
    await apps.shift()!.close();
    await send(second.url, '/t/basic', { key: randomUUID(), body: { label: 'shared' } });
    expect(await claimed()).toBe(2);
  });

  it('counts only its own outcomes where two apps in one process have registries of their own', async () => {
    const [mine, theirs] = [new Registry(), new Registry()];
    const [first, second] = [await start({ registry: mine }), await start({ registry: theirs })];
    const claimed = (registry: Registry) => value(registry, 'idempotency_outcomes_total', { outcome: 'claimed', route: 'POST /t/basic' });
    await send(first.url, '/t/basic', { key: randomUUID(), body: { label: 'mine' } });
    for (let i = 0; i < 2; i++) await send(second.url, '/t/basic', { key: randomUUID(), body: { label: `theirs-${i}` } });
    expect(await claimed(mine)).toBe(1);
    expect(await claimed(theirs)).toBe(2);
  });

  it('uses a prefix and buckets of its own', async () => {
    const registry = new Registry();
    const t = await start({ registry, prefix: 'shop_', buckets: [0.5, 60] });
    await send(t.url, '/t/basic', { key: randomUUID(), body: { label: 'prefixed' } });
    const text = await registry.metrics();
    expect(text).toMatch(/^shop_idempotency_outcomes_total\{outcome="claimed",route="POST \/t\/basic"\} 1$/m);
    expect(text).toMatch(/^shop_idempotency_added_seconds_bucket\{le="60",outcome="claimed",route="POST \/t\/basic"\} 1$/m);
    expect(text).not.toMatch(/le="0.1"/);
  });

  it("registers in prom-client's global register with metrics: true", async () => {
    try {
      const t = await start(true);
      await send(t.url, '/t/basic', { key: randomUUID(), body: { label: 'global' } });
      expect(await value(register, 'idempotency_outcomes_total', { outcome: 'claimed', route: 'POST /t/basic' })).toBe(1);
    } finally {
      register.removeSingleMetric('idempotency_outcomes_total');
      register.removeSingleMetric('idempotency_added_seconds');
    }
  });
});
