import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventPattern, MessagePattern } from '@nestjs/microservices';
import IORedis from 'ioredis';
import { Idempotent, IdempotencyConfigurationError, IdempotencyModule, type IdempotentMessageOptions } from 'nestjs-idempotency';
import { REDIS_URL, uniquePrefix } from '../support/redis';

/** An app with one message handler decorated with `options`: the error its start fails with, or undefined. */
async function startFailure(options: IdempotentMessageOptions | Record<string, unknown>, event = true): Promise<Error | undefined> {
  @Controller()
  class OrdersConsumer {
    @(event ? EventPattern<string>('order.shipped') : MessagePattern('order.quote'))
    @Idempotent(options as IdempotentMessageOptions)
    shipped() {
      return {};
    }
  }
  // The Redis store: no database to set up, and no transactions (a check of its own below).
  const client = new IORedis(REDIS_URL);
  @Module({
    imports: [IdempotencyModule.forRoot({ purgeInterval: 0, store: { type: 'redis', connection: client, prefix: `${uniquePrefix('messages')}:` } })],
    controllers: [OrdersConsumer],
  })
  class ConsumerModule {}
  const app = await NestFactory.create(ConsumerModule, { logger: false });
  const error = await app.init().then(
    () => undefined,
    (failure: unknown) => failure as Error,
  );
  if (!error) await app.close();
  await client.quit();
  return error;
}

describe('@Idempotent() options on a message handler, checked at start', () => {
  it.each([
    ['an HTTP key source', { key: 'header' }, /OrdersConsumer\.shipped: key "header" is not a message key source/],
    ['a lease under 1s', { lease: '500ms' }, /OrdersConsumer\.shipped: lease must be at least 1s/],
    ['a bad redeliveryDelay', { redeliveryDelay: 'soon' }, /OrdersConsumer\.shipped: redeliveryDelay/],
    ['an HTTP-only option', { storeIf: () => true }, /OrdersConsumer\.shipped: storeIf applies to HTTP routes only/],
    ['ack that is no boolean', { ack: 'yes' }, /OrdersConsumer\.shipped: ack must be true or false/],
    ['transaction mode on a store without transactions', { transaction: true }, /OrdersConsumer\.shipped needs transaction mode/],
  ])('%s stops the start with the handler named', async (_case, options, message) => {
    const error = await startFailure(options);
    expect(error).toBeInstanceOf(IdempotencyConfigurationError);
    expect(error?.message).toMatch(message);
  });

  it('a path with an empty part fails where it is written', () => {
    expect(() => Idempotent({ key: { path: 'order..id' } })).toThrow(/key \{"path":"order..id"\} is not a message key source/);
  });

  it.each([
    { key: 'message-id' as const },
    { key: { path: 'order.id' } },
    { key: ['message-id' as const, 'payload-hash' as const], ack: true, redeliveryDelay: '250ms' },
  ])('starts with %j', async (options) => {
    expect(await startFailure(options)).toBeUndefined();
    expect(await startFailure(options, false)).toBeUndefined();
  });
});
