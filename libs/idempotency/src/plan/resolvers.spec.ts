import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { resolveModuleDefaults } from './module-defaults';
import { resolveRoutePlan } from './route-plan.resolver';
import { resolveRunPlan } from './run-plan';

describe('resolveRoutePlan', () => {
  it("merges the route's options over the module's, in milliseconds, and names the route", () => {
    const plan = resolveRoutePlan({ ttl: '1h', lease: '60s' }, { lease: '2s', replayHeaders: ['X-Custom'] }, 'OrdersController.create');
    expect(plan).toMatchObject({ name: 'OrdersController.create', ttlMs: 3_600_000, leaseMs: 2000, maxLeaseMs: 600_000, waitTimeoutMs: 10_000 });
    expect(plan.replayHeaders.has('x-custom')).toBe(true);
  });

  it.each([
    [{ lease: '500ms' }, /^@Idempotent\(\) on A\.b: lease must be at least 1s/],
    [{ ttl: 0 }, /^@Idempotent\(\) on A\.b: ttl: 0 is not a duration \(it is zero\)/],
    [{ ttl: 1.5 }, /^@Idempotent\(\) on A\.b: ttl: 1\.5 is not a duration/],
    [{ lease: '2m', maxLease: '1m' }, /^@Idempotent\(\) on A\.b: lease \(120000 ms\) is longer than maxLease \(60000 ms\)/],
    [{ waitTimeout: Number.NaN }, /^@Idempotent\(\) on A\.b: waitTimeout: NaN is not a duration/],
    [{ maxResponseBytes: 0 }, /^@Idempotent\(\) on A\.b: maxResponseBytes must be a positive whole number of bytes/],
    [{ onInFlight: 'queue' as never }, /^@Idempotent\(\) on A\.b: onInFlight must be 'reject' or 'wait'/],
    [{ scope: 'tenant' as never }, /^@Idempotent\(\) on A\.b: scope must be a function of the request/],
    [{ fingerprint: 'sha256' as never }, /^@Idempotent\(\) on A\.b: fingerprint must be true, false or a function/],
    [{ storeIf: 200 as never }, /^@Idempotent\(\) on A\.b: storeIf must be a function of the status/],
    [{ transaction: 'yes' as never }, /^@Idempotent\(\) on A\.b: transaction must be true or false/],
  ])('refuses %p, naming the route', (route, message) => {
    expect(() => resolveRoutePlan({}, route, 'A.b')).toThrow(IdempotencyConfigurationError);
    expect(() => resolveRoutePlan({}, route, 'A.b')).toThrow(message);
  });

  it("refuses a route lease over the module's maxLease", () => {
    expect(() => resolveRoutePlan({ maxLease: '30s' }, { lease: '45s' }, 'A.b')).toThrow(/lease \(45000 ms\) is longer than maxLease \(30000 ms\)/);
  });
});

describe('resolveModuleDefaults', () => {
  it('reads the defaults, and purgeInterval: 0 as no purge', () => {
    expect(resolveModuleDefaults({ purgeInterval: 0 })).toEqual({
      ttlMs: 86_400_000,
      leaseMs: 30_000,
      maxLeaseMs: 600_000,
      waitTimeoutMs: 10_000,
      purgeIntervalMs: 0,
      purgeBatchSize: 1000,
      maxResponseBytes: 1024 * 1024,
      replayCache: { maxAgeMs: 60_000, maxBytes: 8 * 1024 * 1024 },
    });
    expect(resolveModuleDefaults({ replayCache: false }).replayCache).toBeUndefined();
  });

  it.each([
    [{ ttl: -10 }, /ttl: -10 is not a duration/],
    [{ ttl: Number.NaN }, /ttl: NaN is not a duration/],
    [{ ttl: Number.POSITIVE_INFINITY }, /ttl: Infinity is not a duration/],
    [{ lease: '0s' }, /lease: "0s" is not a duration/],
    [{ lease: '500ms' }, /lease must be at least 1s/],
    [{ lease: '11m' }, /lease \(660000 ms\) is longer than maxLease \(600000 ms\)/],
    [{ purgeInterval: -1 }, /purgeInterval: -1 is not a duration \(it is negative\).*or 0 to turn it off/],
    [{ purgeBatchSize: 1.5 }, /purgeBatchSize must be a positive whole number of rows/],
    [{ replayCache: { maxAge: 0 } }, /replayCache\.maxAge: 0 is not a duration/],
    [{ replayCache: { maxBytes: -1 } }, /replayCache\.maxBytes must be a positive whole number of bytes/],
    [{ outbox: { connection: 'redis://127.0.0.1:6379', retention: 0 } }, /outbox: retention: 0 is not a duration/],
    [{ claimContext: 'sometimes' as 'auto' }, /claimContext must be 'auto' or 'always'; got "sometimes"/],
  ])('refuses %p, naming the option, though no route reads it', (options, message) => {
    expect(() => resolveModuleDefaults(options)).toThrow(IdempotencyConfigurationError);
    expect(() => resolveModuleDefaults(options)).toThrow(/^IdempotencyModule/);
    expect(() => resolveModuleDefaults(options)).toThrow(message);
  });

  it('names every wrong option at once', () => {
    expect(() => resolveModuleDefaults({ ttl: 0, waitTimeout: 'soon' })).toThrow(/^2 idempotency options are wrong:\n- .*ttl: 0.*\n- .*waitTimeout: "soon"/);
  });
});

describe('resolveRunPlan', () => {
  const defaults = resolveModuleDefaults({ lease: '60s' });

  it("uses the module's checked values for what the call leaves out, and waits on a key in flight", () => {
    expect(resolveRunPlan(defaults, {})).toEqual({
      ttlMs: 86_400_000,
      leaseMs: 60_000,
      maxLeaseMs: 600_000,
      waitTimeoutMs: 10_000,
      onInFlight: 'wait',
      transaction: false,
    });
    expect(resolveRunPlan(defaults, { ttl: '1m', lease: '5s', onInFlight: 'reject', transaction: true })).toMatchObject({
      ttlMs: 60_000,
      leaseMs: 5000,
      onInFlight: 'reject',
      transaction: true,
    });
  });

  it.each([
    [{ lease: '500ms' }, /^run\(\): lease must be at least 1s/],
    [{ maxLease: '30s' }, /^run\(\): lease \(60000 ms\) is longer than maxLease \(30000 ms\)/],
    [{ ttl: 1.5 }, /^run\(\): ttl: 1\.5 is not a duration/],
    [{ waitTimeout: -1 }, /^run\(\): waitTimeout: -1 is not a duration/],
  ])('refuses %p with the rules of a route', (options, message) => {
    expect(() => resolveRunPlan(defaults, options)).toThrow(IdempotencyConfigurationError);
    expect(() => resolveRunPlan(defaults, options)).toThrow(message);
  });
});
