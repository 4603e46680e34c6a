import { randomUUID } from 'node:crypto';
import { deriveKey } from '../../libs/idempotency/src/claim/claim-context';
import { createSchema, dropSchema } from '../support/database';
import { exited, MessageConsumers, until } from '../support/message-consumers';
import { queueName, RawBroker } from '../support/rabbitmq';

/**
 * @Idempotent() consumers on a real RabbitMQ, in processes of their own that really crash; effects counted in
 * PostgreSQL. IDEMPOTENCY_BYPASS=1 runs the same consumers without the claim: then the three first tests fail.
 */
describe('RabbitMQ consumers', () => {
  let schema: string;
  let broker: RawBroker;
  const queues: string[] = [];
  const groups: MessageConsumers[] = [];

  /** Consumers on a queue of their own. */
  const consumers = async (label: string) => {
    const queue = queueName(label);
    queues.push(queue);
    await broker.declare(queue);
    const group = new MessageConsumers(schema, queue);
    groups.push(group);
    return group;
  };

  beforeAll(async () => {
    schema = await createSchema('rabbitmq');
    await MessageConsumers.tables(schema);
    broker = await RawBroker.open();
  });
  afterAll(async () => {
    await Promise.all(groups.map((group) => group.killAll()));
    await broker?.close(queues);
    await dropSchema(schema);
  });

  it('a consumer killed after its effect and before its ack: the redelivery is replayed, one effect', async () => {
    const group = await consumers('crash_at_ack');
    const label = randomUUID();
    const first = await group.start();
    broker.publish(group.queue, 'effect', { label, crashAtAck: true }, { messageId: label });
    expect(await exited(first)).toBe('SIGKILL');
    expect(await group.count('effects', label)).toBe(1);

    await group.start();
    await until(() => group.acked(label) === 1);
    expect(await group.count('effects', label)).toBe(1);
    expect(await group.count('runs', label)).toBe(1);
  });

  it('transaction mode: a consumer killed inside its handler, after its effect: the redelivery runs once, one effect', async () => {
    const group = await consumers('crash_in_tx');
    const label = randomUUID();
    const first = await group.start();
    broker.publish(group.queue, 'effect-tx', { label, crashAfterEffect: true }, { messageId: label });
    expect(await exited(first)).toBe('SIGKILL');

    await group.start();
    await until(() => group.acked(label) === 1);
    expect(await group.count('effects', label)).toBe(1);
  });

  it('the same message published 50 times at once to 4 competing consumers in 2 processes: one effect, every copy acked', async () => {
    const group = await consumers('fifty');
    await Promise.all([group.start({ consumers: 2 }), group.start({ consumers: 2 })]);
    const label = randomUUID();
    for (let copy = 0; copy < 50; copy++) broker.publish(group.queue, 'effect', { label, holdMs: 300 }, { messageId: label });

    // Duplicates that found the first still running went back to the queue, and were acked once it had completed.
    await until(() => group.acked(label) === 50);
    expect(await group.count('effects', label)).toBe(1);
    expect(await broker.messageCount(group.queue)).toBe(0);
  });

  it('a request/reply duplicate gets the first reply, byte for byte', async () => {
    const group = await consumers('reply');
    await group.start();
    const replies = await broker.replies();
    const label = randomUUID();
    const request = { label, amount: 12.34 };
    broker.publish(group.queue, 'quote', request, { messageId: label, id: 'request-1', replyTo: replies.queue });
    const first = await replies.next();
    broker.publish(group.queue, 'quote', request, { messageId: label, id: 'request-1', replyTo: replies.queue });
    const second = await replies.next();

    expect(first.properties.correlationId).toBe('request-1');
    expect(JSON.parse(first.content.toString())).toMatchObject({ response: { quoteId: expect.any(String) as unknown }, isDisposed: true });
    expect(second.content.equals(first.content)).toBe(true);
    expect(await group.count('effects', label)).toBe(1);
  });

  it('a request duplicate that arrives while the first still runs gets no reply then; its redelivery gets the first reply', async () => {
    const group = await consumers('reply_in_flight');
    await group.start({ consumers: 2 });
    const replies = await broker.replies();
    const label = randomUUID();
    for (const id of ['first', 'second']) {
      broker.publish(group.queue, 'quote', { label, amount: 1, holdMs: 500 }, { messageId: label, id, replyTo: replies.queue });
    }
    const [one, two] = [await replies.next(), await replies.next()];

    expect(new Set([one.properties.correlationId, two.properties.correlationId])).toEqual(new Set(['first', 'second']));
    expect(two.content.equals(one.content)).toBe(true);
    expect(await group.count('effects', label)).toBe(1);
    await until(() => group.acked(label) === 2);
  });

  it("the handler runs in its claim's context: @IdempotencyKey() gives the scope, key and derived keys", async () => {
    const group = await consumers('identity');
    await group.start();
    const replies = await broker.replies();
    const label = randomUUID();
    broker.publish(group.queue, 'identity', { label }, { id: 'identity', replyTo: replies.queue });
    const reply = JSON.parse((await replies.next()).content.toString()) as { response: unknown };

    expect(reply.response).toEqual({ scope: 'message:identity', key: label, attempt: 1, charge: deriveKey('message:identity', label, 'charge') });
  });

  it('an RpcException is the handler answer: stored, and replayed as the same error reply', async () => {
    const group = await consumers('refusal');
    await group.start();
    const replies = await broker.replies();
    const label = randomUUID();
    for (const id of ['a', 'b']) broker.publish(group.queue, 'refuse', { label }, { messageId: label, id, replyTo: replies.queue });
    const [first, second] = [await replies.next(), await replies.next()];

    const error = (JSON.parse(first.content.toString()) as { err: { code: string; ticket: string } }).err;
    expect(error).toMatchObject({ code: 'OUT_OF_STOCK' });
    expect((JSON.parse(second.content.toString()) as { err: unknown }).err).toEqual(error);
    expect(await group.count('effects', label)).toBe(1);
  });

  it('a handler that throws releases the claim: the message comes back and runs again, one effect', async () => {
    const group = await consumers('failure');
    await group.start();
    const label = randomUUID();
    broker.publish(group.queue, 'effect', { label, failOnce: true }, { messageId: label });

    await until(() => group.acked(label) === 1);
    expect(await group.count('runs', label)).toBe(2);
    expect(await group.count('effects', label)).toBe(1);
  });

  it('transaction mode: concurrent copies wait for the first, one effect', async () => {
    const group = await consumers('tx_copies');
    await group.start({ consumers: 2 });
    const label = randomUUID();
    for (let copy = 0; copy < 10; copy++) broker.publish(group.queue, 'effect-tx', { label, holdMs: 200 }, { messageId: label });

    await until(() => group.acked(label) === 10);
    expect(await group.count('effects', label)).toBe(1);
  });

  it('key sources: a path into the payload, the payload hash, a function of the RmqContext', async () => {
    const group = await consumers('keys');
    await group.start();
    const [byPath, byHash, byHeader] = [randomUUID(), randomUUID(), randomUUID()];
    for (let copy = 0; copy < 3; copy++) {
      broker.publish(group.queue, 'keyed', { label: byPath, order: { id: byPath } }, { messageId: `path-${copy}` });
      broker.publish(group.queue, 'hashed', { label: byHash }, { messageId: `hash-${copy}` });
      broker.publish(group.queue, 'by-header', { label: byHeader }, { messageId: `header-${copy}`, headers: { 'x-event-id': byHeader } });
    }
    // Another order under the same path, another payload: each its own message.
    const other = randomUUID();
    broker.publish(group.queue, 'keyed', { label: other, order: { id: other } }, { messageId: 'path-other' });

    await until(() => [0, 1, 2].every((copy) => ['path', 'hash', 'header'].every((source) => group.acked(`${source}-${copy}`) === 1)));
    await until(() => group.acked('path-other') === 1);
    for (const label of [byPath, byHash, byHeader, other]) expect(await group.count('effects', label)).toBe(1);
  });

  it('a message without its key, or whose key came with another payload, goes to the dead letters without running', async () => {
    const group = await consumers('refused');
    await group.start();
    const label = randomUUID();
    broker.publish(group.queue, 'effect', { label }); // no messageId
    const dead = await broker.nextFrom(`${group.queue}.dead`);
    expect(JSON.parse(dead.content.toString())).toMatchObject({ data: { label } });

    const reused = randomUUID();
    broker.publish(group.queue, 'effect', { label: reused }, { messageId: reused });
    await until(() => group.acked(reused) === 1);
    broker.publish(group.queue, 'effect', { label: reused, changed: true }, { messageId: reused });
    const deadReuse = await broker.nextFrom(`${group.queue}.dead`);
    expect(JSON.parse(deadReuse.content.toString())).toMatchObject({ data: { changed: true } });
    expect(await group.count('runs', label)).toBe(0);
    expect(await group.count('effects', reused)).toBe(1);
  });
});
