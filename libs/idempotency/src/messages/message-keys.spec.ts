import { IdempotencyKeyInvalidException } from '../errors/idempotency.errors';
import { messageIdOf, patternOf } from './broker-message';
import { assertMessageKeySource, findMessageKey, payloadHash } from './message-keys';

/** An RmqContext by shape: an amqplib message and channel. */
const rmq = (properties: Record<string, unknown>) => ({
  getMessage: () => ({ fields: { deliveryTag: 1 }, properties }),
  getChannelRef: () => ({ ack: jest.fn(), nack: jest.fn() }),
  getPattern: () => 'order.shipped',
});
const headers = (values: Record<string, string>) => ({ get: (name: string) => values[name] ?? '' });
/** A JetStream context by shape. */
const jetStream = (values: Record<string, string>) => ({
  getMessage: () => ({ ack: jest.fn(), nak: jest.fn(), term: jest.fn(), seq: 42, headers: headers(values), info: { stream: 'ORDERS' } }),
  getSubject: () => 'ORDERS.shipped',
});

describe('message key sources', () => {
  const message = (context: unknown, data: unknown = { order: { id: 7 } }) => ({ pattern: 'order.shipped', data, context });

  it("'message-id' reads the AMQP messageId, Nats-Msg-Id, or a JetStream message's stream and sequence", () => {
    expect(findMessageKey('message-id', message(rmq({ messageId: 'evt-1' })))).toBe('evt-1');
    expect(findMessageKey('message-id', message(rmq({})))).toBeUndefined();
    expect(findMessageKey('message-id', message({ getHeaders: () => headers({ 'Nats-Msg-Id': 'n-1' }) }))).toBe('n-1');
    expect(findMessageKey('message-id', message(jetStream({ 'Nats-Msg-Id': 'js-1' })))).toBe('js-1');
    expect(findMessageKey('message-id', message(jetStream({})))).toBe('ORDERS:42');
    expect(messageIdOf(undefined)).toBeUndefined();
  });

  it('a path reads into the payload; the first source with a key wins', () => {
    expect(findMessageKey({ path: 'order.id' }, message(rmq({})))).toBe('7');
    expect(findMessageKey({ path: 'order.missing' }, message(rmq({})))).toBeUndefined();
    expect(findMessageKey(['message-id', { path: 'order.id' }], message(rmq({})))).toBe('7');
  });

  it("'payload-hash' ignores key order, and a function gets the payload and the context", () => {
    const a = findMessageKey('payload-hash', message(rmq({}), { a: 1, b: 2 }));
    expect(a).toBe(findMessageKey('payload-hash', message(rmq({}), { b: 2, a: 1 })));
    expect(a).toBe(payloadHash({ pattern: 'order.shipped', data: { a: 1, b: 2 } }));
    expect(a).not.toBe(payloadHash({ pattern: 'order.cancelled', data: { a: 1, b: 2 } }));
    const context = rmq({ headers: { 'x-event-id': 'h-1' } });
    const fromHeader = (_data: unknown, ctx: unknown) => (ctx as typeof context).getMessage().properties.headers as Record<string, string>;
    expect(findMessageKey((data, ctx) => fromHeader(data, ctx)['x-event-id'], message(context))).toBe('h-1');
    expect(findMessageKey((data) => (data as { order: { id: number } }).order.id, message(context))).toBe('7');
  });

  it('checks keys as over HTTP', () => {
    expect(() => findMessageKey({ path: 'k' }, message(rmq({}), { k: '' }))).toThrow(IdempotencyKeyInvalidException);
    expect(() => findMessageKey({ path: 'k' }, message(rmq({}), { k: 'x'.repeat(256) }))).toThrow(IdempotencyKeyInvalidException);
    expect(() => findMessageKey({ path: 'k' }, message(rmq({}), { k: 'a\u0000b' }))).toThrow(IdempotencyKeyInvalidException);
    expect(() => findMessageKey({ path: 'k' }, message(rmq({}), { k: { nested: true } }))).toThrow(IdempotencyKeyInvalidException);
  });

  it('names what is wrong with a source at start', () => {
    expect(() => assertMessageKeySource('header', '@Idempotent() on A.b')).toThrow(/A\.b: key "header" is not a message key source/);
    expect(() => assertMessageKeySource({ path: '' }, 'x')).toThrow(/not a message key source/);
    expect(() => assertMessageKeySource(['message-id', { path: 'a.b' }, 'payload-hash', () => 'k'], 'x')).not.toThrow();
  });

  it('the pattern comes from the context where it says it', () => {
    expect(patternOf(rmq({}))).toBe('order.shipped');
    expect(patternOf(jetStream({}))).toBe('ORDERS.shipped');
    expect(patternOf({})).toBeUndefined();
  });
});
