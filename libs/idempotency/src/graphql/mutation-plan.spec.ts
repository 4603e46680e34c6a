import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { resolveMutationPlan } from './mutation-plan';

describe('resolveMutationPlan', () => {
  it("takes the module's durations and policies, not its key, scope or fingerprint functions", () => {
    const moduleKey = jest.fn();
    const moduleScope = jest.fn();
    const plan = resolveMutationPlan({ lease: '60s', key: moduleKey, scope: moduleScope, transaction: true }, {}, 'OrdersResolver.placeOrder');
    expect(plan).toMatchObject({ name: 'OrdersResolver.placeOrder', key: 'header', leaseMs: 60_000, transaction: true, fingerprint: true });
    expect(plan.scope).toBeUndefined();
    expect(resolveMutationPlan({ fingerprint: false }, {}, 'A.b').fingerprint).toBe(false);
    expect(resolveMutationPlan({}, { key: { argument: 'idempotencyKey' }, ttl: '1h' }, 'A.b')).toMatchObject({
      key: { argument: 'idempotencyKey' },
      ttlMs: 3_600_000,
    });
  });

  it.each([
    [{ lease: '500ms' }, /^@Idempotent\(\) on A\.b: lease must be at least 1s/],
    [{ key: 'stripe' }, /^@Idempotent\(\) on A\.b: key "stripe" is not a key source of a GraphQL mutation/],
    [{ key: [{ argument: 'k' }, { header: '' }] }, /^@Idempotent\(\) on A\.b: key \{"header":""\} is not a key source of a GraphQL mutation/],
    [{ order: { resource: () => 'r', version: () => 1 } }, /^@Idempotent\(\) on A\.b: order has no meaning on a GraphQL mutation/],
    [{ replayHeaders: ['etag'] }, /^@Idempotent\(\) on A\.b: replayHeaders has no meaning on a GraphQL mutation/],
    [{ storeIf: 200 }, /^@Idempotent\(\) on A\.b: storeIf must be a function of the status/],
  ])('refuses %p, naming the resolver', (options, message) => {
    expect(() => resolveMutationPlan({}, options as never, 'A.b')).toThrow(IdempotencyConfigurationError);
    expect(() => resolveMutationPlan({}, options as never, 'A.b')).toThrow(message);
  });
});
