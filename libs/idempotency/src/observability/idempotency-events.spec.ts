import { Logger } from '@nestjs/common';
import crypto from 'node:crypto';
import { idempotencyKeyHash, type IdempotencyOutcomeMessage, scopeLabel } from './idempotency-events';
import { onIdempotencyOutcome } from './outcome-channel';
import { OutcomeReport } from './outcome-report';

describe('idempotency outcome events', () => {
  afterEach(() => jest.restoreAllMocks());

  it('hashes scope and key to 16 hex digits, the same each time, different for another scope', () => {
    const hash = idempotencyKeyHash('POST /orders', 'order-1');
    expect(hash).toBe(crypto.createHash('sha256').update('POST /orders\u0000order-1').digest('hex').slice(0, 16));
    expect(idempotencyKeyHash('POST /orders', 'order-1')).toBe(hash);
    expect(idempotencyKeyHash('POST /orders#acct_1', 'order-1')).not.toBe(hash);
  });

  it('labels a scope without the part a scope function added', () => {
    expect(scopeLabel('stripe:POST /webhooks/stripe')).toBe('stripe:POST /webhooks/stripe');
    expect(scopeLabel('POST /orders#acct_42')).toBe('POST /orders');
    expect(scopeLabel('job:fulfilment')).toBe('job:fulfilment');
  });

  it('hashes and formats nothing while nobody subscribes and the log level is off', () => {
    jest.spyOn(Logger, 'isLevelEnabled').mockReturnValue(false);
    const hash = jest.spyOn(crypto, 'createHash');
    new OutcomeReport('POST /orders', 'order-1', true, {}).answer('claimed', { status: 201 });
    expect(hash).not.toHaveBeenCalled();
  });

  it('publishes to subscribers, frozen, with the time of the work it timed', async () => {
    jest.spyOn(Logger, 'isLevelEnabled').mockReturnValue(false);
    const seen: IdempotencyOutcomeMessage[] = [];
    const stop = onIdempotencyOutcome((message) => seen.push(message));
    try {
      const report = new OutcomeReport('POST /orders#acct_42', 'order-1', false, {});
      await report.timed(() => new Promise((resolve) => setTimeout(resolve, 20)));
      report.attempt = 1;
      report.answer('claimed', { status: 200 });
    } finally {
      stop();
    }
    expect(seen).toEqual([
      {
        outcome: 'claimed',
        route: 'POST /orders',
        keyHash: idempotencyKeyHash('POST /orders#acct_42', 'order-1'),
        attempt: 1,
        addedMs: expect.any(Number) as number,
      },
    ]);
    expect(seen[0].addedMs).toBeGreaterThanOrEqual(15);
    expect(Object.isFrozen(seen[0])).toBe(true);
  });
});
