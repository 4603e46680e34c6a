import { redisRecordKey } from './redis-record-key';

describe('redisRecordKey', () => {
  it('keeps scopes and keys apart, whatever they hold', () => {
    const keys = [
      ['a:b', 'c'],
      ['a', 'b:c'],
      ['a%3Ab', 'c'],
      ['POST /x#\uD800', 'k'],
      ['POST /x#%uD800', 'k'],
      ['POST /x#\uFFFD', 'k'],
    ].map(([scope, key]) => redisRecordKey('p:', scope, key));
    expect(new Set(keys).size).toBe(keys.length);
    expect(redisRecordKey('idempotency:', 'POST /orders', 'k1')).toBe('idempotency:POST%20%2Forders:k1');
  });
});
