import { randomBytes } from 'node:crypto';
import { type Channel, type ChannelModel, connect, type ConsumeMessage, type GetMessage } from 'amqplib';

/** The RabbitMQ the message suites run against. */
export const RABBITMQ_URL = process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

/** A queue name of this test file's own: suites never read each other's messages. */
export function queueName(label: string): string {
  return `idempotency_${label}_${randomBytes(4).toString('hex')}`;
}

/** A publisher (and reply reader) that talks to RabbitMQ directly, as another service would: raw bytes both ways. */
export class RawBroker {
  private constructor(
    private readonly connection: ChannelModel,
    readonly channel: Channel,
  ) {}

  static async open(): Promise<RawBroker> {
    const connection = await connect(RABBITMQ_URL);
    return new RawBroker(connection, await connection.createChannel());
  }

  /** Declares the queue as the consumer app does (with its dead-letter queue), so that publishing never races its start. */
  async declare(queue: string): Promise<void> {
    await this.channel.assertQueue(`${queue}.dead`, { durable: false });
    await this.channel.assertQueue(queue, { durable: false, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': `${queue}.dead` } });
  }

  /** Publishes a Nest event (`{ pattern, data }`), or a request when `id` and `replyTo` are given. */
  publish(
    queue: string,
    pattern: string,
    data: unknown,
    options: { messageId?: string; id?: string; replyTo?: string; headers?: Record<string, unknown> } = {},
  ): void {
    const { id, ...properties } = options;
    this.channel.sendToQueue(queue, Buffer.from(JSON.stringify(id ? { pattern, data, id } : { pattern, data })), { ...properties, correlationId: id });
  }

  /** An exclusive queue whose messages are kept as they arrived, byte for byte. */
  async replies(): Promise<{ queue: string; next(): Promise<ConsumeMessage> }> {
    const { queue } = await this.channel.assertQueue('', { exclusive: true });
    const arrived: ConsumeMessage[] = [];
    const waiting: Array<(message: ConsumeMessage) => void> = [];
    await this.channel.consume(
      queue,
      (message) => {
        if (!message) return;
        const waiter = waiting.shift();
        if (waiter) waiter(message);
        else arrived.push(message);
      },
      { noAck: true },
    );
    return {
      queue,
      next: () => {
        const message = arrived.shift();
        return message ? Promise.resolve(message) : new Promise((resolve) => waiting.push(resolve));
      },
    };
  }

  /** The next message of a queue (a dead-letter queue), waiting for it. */
  async nextFrom(queue: string): Promise<GetMessage> {
    for (;;) {
      const message = await this.channel.get(queue, { noAck: true });
      if (message) return message;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async messageCount(queue: string): Promise<number> {
    return (await this.channel.checkQueue(queue)).messageCount;
  }

  async close(queues: string[]): Promise<void> {
    for (const queue of queues) {
      await this.channel.deleteQueue(queue);
      await this.channel.deleteQueue(`${queue}.dead`);
    }
    await this.connection.close();
  }
}
