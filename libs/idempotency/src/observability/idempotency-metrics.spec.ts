import { Gauge, Registry } from 'prom-client';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IdempotencyMetrics } from './idempotency-metrics';

describe('IdempotencyMetrics.start', () => {
  it('does nothing without the option', async () => {
    await expect(IdempotencyMetrics.start(undefined, {})).resolves.toBeNull();
    await expect(IdempotencyMetrics.start(false, {})).resolves.toBeNull();
  });

  it.each([
    [{ prefix: '1st_' }, /metrics.prefix "1st_" cannot start a Prometheus metric name/],
    [{ prefix: 'my-app_' }, /use letters, digits, _ and :/],
    [{ buckets: [] }, /metrics.buckets must be finite numbers of seconds in increasing order/],
    [{ buckets: [0.1, 0.05] }, /in increasing order/],
  ])('refuses %j with a message that says the fix', async (options, message) => {
    const registry = new Registry();
    const start = IdempotencyMetrics.start({ registry, ...options }, {});
    await expect(start).rejects.toBeInstanceOf(IdempotencyConfigurationError);
    await expect(start).rejects.toThrow(message);
  });

  it('refuses a registry that holds another metric of the same name, and says to give a prefix', async () => {
    const registry = new Registry();
    new Gauge({ name: 'idempotency_outcomes_total', help: 'something else', registers: [registry] });
    await expect(IdempotencyMetrics.start({ registry }, {})).rejects.toThrow(/already holds a metric named idempotency_outcomes_total.*prefix/);
  });

  it('says to install prom-client when it is missing', async () => {
    await jest.isolateModulesAsync(async () => {
      jest.doMock('prom-client', () => {
        throw Object.assign(new Error("Cannot find module 'prom-client'"), { code: 'MODULE_NOT_FOUND' });
      });
      // This registry's own copies, which see the mock: required here, where an import would be hoisted out.
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- must load inside the isolated registry
      const { IdempotencyMetrics: Isolated } = require('./idempotency-metrics') as typeof import('./idempotency-metrics');
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- must load inside the isolated registry
      const { IdempotencyConfigurationError: IsolatedError } = require('../errors/configuration.errors') as typeof import('../errors/configuration.errors');
      const start = Isolated.start(true, {});
      await expect(start).rejects.toBeInstanceOf(IsolatedError);
      await expect(start).rejects.toThrow('The metrics option of IdempotencyModule needs the package prom-client: npm install prom-client');
    });
  });
});
