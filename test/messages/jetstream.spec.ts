import { randomUUID } from 'node:crypto';
import { createSchema, dropSchema } from '../support/database';
import { JetStreamBroker } from '../support/jetstream';
import { exited, MessageConsumers, until } from '../support/message-consumers';

/**
 * @Idempotent() consumers of NATS JetStream (through examples/jetstream's transport), in processes of their own
 * that really crash; effects counted in PostgreSQL. IDEMPOTENCY_BYPASS=1 runs them without the claim: then the
 * crash and the many-copies tests fail.
 */
describe('JetStream consumers', () => {
  let schema: string;
  let broker: JetStreamBroker;
  const groups: MessageConsumers[] = [];

  /** Consumers of a stream of their own; JetStream redelivers an unacked message after `ackWaitMs`. */
  const consumers = async (label: string, ackWaitMs = 2000) => {
    const { stream, durable } = await broker.stream(label, ackWaitMs);
    const group = new MessageConsumers(schema, stream, 'jetstream-consumer', { STREAM: stream, DURABLE: durable });
    groups.push(group);
    return group;
  };

  beforeAll(async () => {
    schema = await createSchema('jetstream');
    await MessageConsumers.tables(schema);
    broker = await JetStreamBroker.open();
  });
  afterAll(async () => {
    await Promise.all(groups.map((group) => group.killAll()));
    await broker?.close();
    await dropSchema(schema);
  });

  it('a consumer killed after its effect and before its ack: the redelivery (after ack_wait) is replayed, one effect', async () => {
    const group = await consumers('crash_at_ack');
    const label = randomUUID();
    const first = await group.start();
    await broker.publish(`${group.queue}.effect`, { label, crashAtAck: true }, label);
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
    await broker.publish(`${group.queue}.effect-tx`, { label, crashAfterEffect: true }, label);
    expect(await exited(first)).toBe('SIGKILL');

    await group.start();
    await until(() => group.acked(label) === 1);
    expect(await group.count('effects', label)).toBe(1);
  });

  it('the same message published 50 times at once to 4 competing consumers in 2 processes: one effect, every copy acked', async () => {
    const group = await consumers('fifty');
    await Promise.all([group.start({ consumers: 2 }), group.start({ consumers: 2 })]);
    const label = randomUUID();
    // Each copy with an id of its own, else JetStream drops the copies within its duplicate window itself; the key is the payload's label.
    const stored = await Promise.all(
      Array.from({ length: 50 }, (_, copy) => broker.publish(`${group.queue}.by-label`, { label, holdMs: 300 }, `${label}-${copy}`)),
    );
    expect(stored.filter(Boolean)).toHaveLength(50);

    await until(() => group.acked(label) === 50);
    expect(await group.count('effects', label)).toBe(1);
    await until(async () => (await broker.pending(group.queue)) === 0);
  });

  it('a handler that throws releases the claim: JetStream delivers it again and it runs again, one effect', async () => {
    const group = await consumers('failure');
    await group.start();
    const label = randomUUID();
    await broker.publish(`${group.queue}.effect`, { label, failOnce: true }, label);

    await until(() => group.acked(label) === 1);
    expect(await group.count('runs', label)).toBe(2);
    expect(await group.count('effects', label)).toBe(1);
  });

  it('without Nats-Msg-Id, the key is the stream sequence: a redelivery is the same message, another publish another', async () => {
    const group = await consumers('sequence');
    await group.start();
    const label = randomUUID();
    await broker.publish(`${group.queue}.effect`, { label });
    await broker.publish(`${group.queue}.effect`, { label });

    await until(() => group.acked(label) === 2);
    expect(await group.count('effects', label)).toBe(2);
  });
});
