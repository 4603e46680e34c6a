import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { IdempotencyContext } from '../idempotency-context';
import { carryClaimContext, currentClaim, deriveKey, runInClaimContext } from './claim-context';

describe('the claim context and derive()', () => {
  // As in an app that reads claims (see claim-context-switch.spec.ts for one that does not).
  beforeAll(() => carryClaimContext());

  it('derives the documented formula: base64url of sha-256 over the JSON array of label, scope, key and name', () => {
    const expected = createHash('sha256').update('["nestjs-idempotency/derive/v1","POST /orders","order-1","charge"]').digest('base64url');
    expect(deriveKey('POST /orders', 'order-1', 'charge')).toBe(expected);
    expect(expected).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('differs per name, scope and key, including when the parts only move their boundaries', () => {
    const derived = [
      deriveKey('s', 'k', 'charge'),
      deriveKey('s', 'k', 'refund'),
      deriveKey('s', 'k2', 'charge'),
      deriveKey('s2', 'k', 'charge'),
      deriveKey('s', 'k,charge', 'x'),
      deriveKey('s,k', 'charge', 'x'),
      deriveKey('s', 'k', 'charge\u0000'),
    ];
    expect(new Set(derived).size).toBe(derived.length);
  });

  it('refuses an empty or non-string name with the fix', () => {
    expect(() => deriveKey('s', 'k', '')).toThrow(IdempotencyConfigurationError);
    expect(() => deriveKey('s', 'k', undefined as unknown as string)).toThrow(/derive\(\) needs a non-empty name .* got undefined/);
  });

  it('gives the claim to everything the function starts, and to nothing outside', async () => {
    const seen: Array<string | undefined> = [];
    const done = runInClaimContext({ scope: 's', key: 'k', attempt: 2 }, async () => {
      await sleep(1);
      seen.push(currentClaim()?.key);
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          seen.push(IdempotencyContext.current()?.key);
          resolve();
        }, 1),
      );
      return IdempotencyContext.derive('charge');
    });
    expect(currentClaim()).toBeUndefined();
    await expect(done).resolves.toBe(deriveKey('s', 'k', 'charge'));
    expect(seen).toEqual(['k', 'k']);
    expect(new IdempotencyContext().current()).toBeUndefined();
  });

  it('sees the innermost claim when runs nest, and the outer one again after', async () => {
    await runInClaimContext({ scope: 'outer', key: 'k', attempt: 1 }, async () => {
      const inner = await runInClaimContext({ scope: 'inner', key: 'k', attempt: 1 }, () => Promise.resolve(currentClaim()?.scope));
      expect(inner).toBe('inner');
      expect(currentClaim()).toMatchObject({ scope: 'outer', key: 'k', attempt: 1 });
    });
  });

  it('refuses derive() where no claim is held, saying where it can be called', () => {
    expect(() => IdempotencyContext.derive('charge')).toThrow(IdempotencyConfigurationError);
    expect(() => new IdempotencyContext().derive('charge')).toThrow(/no idempotency claim is held.*IdempotencyContext\.current\(\) first/);
  });
});
