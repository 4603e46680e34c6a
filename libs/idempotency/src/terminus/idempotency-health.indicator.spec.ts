import { HealthIndicatorService } from '@nestjs/terminus';
import type { IdempotencyStore } from '../storage/idempotency-store';
import { IdempotencyHealthIndicator } from './idempotency-health.indicator';

/** `expect.any()` is typed `any`; as `unknown` it fits the expected objects without unsafe assignments. */
const anyNumber: unknown = expect.any(Number);

const indicator = (find: IdempotencyStore['find']) =>
  new IdempotencyHealthIndicator({ find } as Pick<IdempotencyStore, 'find'> as IdempotencyStore, new HealthIndicatorService());

describe('IdempotencyHealthIndicator', () => {
  it('is up with the response time when the store answers a look-up', async () => {
    const find = jest.fn(() => Promise.resolve(undefined));
    const result = await indicator(find).isHealthy();
    expect(result).toEqual({ idempotency: { status: 'up', responseTime: anyNumber } });
    expect(find).toHaveBeenCalledWith('', '');
  });

  it('is down with the reason when the store fails', async () => {
    const result = await indicator(async () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:5432'))).isHealthy('store');
    expect(result).toEqual({ store: { status: 'down', message: 'connect ECONNREFUSED 127.0.0.1:5432', responseTime: anyNumber } });
  });

  it('is down when the store takes longer than the timeout (a duration)', async () => {
    const never = () => new Promise<undefined>(() => undefined);
    const started = Date.now();
    const result = await indicator(never).isHealthy('idempotency', { timeout: '50ms' });
    expect(result).toEqual({ idempotency: { status: 'down', message: 'the store did not answer within 50ms', responseTime: anyNumber } });
    expect(Date.now() - started).toBeLessThan(1000);
  });

  it('refuses a timeout that is not a duration, naming the option', async () => {
    await expect(indicator(jest.fn()).isHealthy('idempotency', { timeout: 'soon' })).rejects.toThrow(
      /^IdempotencyHealthIndicator.isHealthy\(\): timeout: "soon" is not a duration/,
    );
  });
});
