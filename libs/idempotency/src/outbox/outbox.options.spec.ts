import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { resolveOutboxOptions } from './outbox.options';

describe('resolveOutboxOptions', () => {
  it('fills in the defaults', () => {
    expect(resolveOutboxOptions({ connection: 'redis://127.0.0.1:6379/2' })).toEqual({
      connection: { url: 'redis://127.0.0.1:6379/2' },
      relay: true,
      pollIntervalMs: 500,
      batchSize: 100,
      retentionMs: 24 * 3600_000,
      redeliverAfterMs: null,
      maxSends: 5,
      sendTimeoutMs: 5000,
      prefix: undefined,
    });
    expect(resolveOutboxOptions({ connection: { host: 'redis', port: 6380 }, redeliverAfter: '5m', relay: false })).toMatchObject({
      connection: { host: 'redis', port: 6380 },
      redeliverAfterMs: 300_000,
      relay: false,
    });
  });

  it.each([
    [{ connection: 'postgres://x' }, /redis:\/\/ or rediss:\/\//],
    [{ connection: 'not a url' }, /not a redis:\/\/ URL/],
    [{ connection: 'redis://x', batchSize: 0 }, /batchSize/],
    [{ connection: 'redis://x', pollInterval: 'soon' }, /pollInterval/],
    [{ connection: 'redis://x', redeliverAfter: '2s', sendTimeout: '5s' }, /longer than sendTimeout/],
    [{ connection: 'redis://x', maxSends: 0 }, /maxSends/],
  ])('refuses %p with a message that says the fix', (options, message) => {
    expect(() => resolveOutboxOptions(options)).toThrow(IdempotencyConfigurationError);
    expect(() => resolveOutboxOptions(options)).toThrow(message);
  });
});
