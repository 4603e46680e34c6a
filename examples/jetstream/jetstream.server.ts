/**
 * A small Nest custom transport for JetStream consumers (Nest 12's own NATS transport speaks core NATS, which
 * never redelivers). Each message of a durable pull consumer with explicit acks goes to the `@EventPattern()`
 * handler of its subject, with a `JetStreamContext`; the transport acks it once the handler has ended, unless
 * someone settled it first (`@Idempotent({ ack: true })` does: it acks after the claim completed, or naks a
 * duplicate in flight), and naks it when the handler fails, so JetStream delivers it again.
 *
 * @example
 * const app = await NestFactory.createMicroservice(AppModule, {
 *   strategy: new JetStreamServer({ servers: 'nats://127.0.0.1:4222', stream: 'ORDERS', durable: 'shipping' }),
 * });
 */
import { BaseRpcContext, type CustomTransportStrategy, Server } from '@nestjs/microservices';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { type ConsumerMessages, jetstream, type JsMsg } from '@nats-io/jetstream';
import { isObservable, lastValueFrom } from 'rxjs';

export interface JetStreamServerOptions {
  servers: string | string[];
  /** The stream and durable consumer to read (both made beforehand, as a deployment does). */
  stream: string;
  durable: string;
}

/** What a JetStream handler gets as its context (`@Ctx()`): the message, to read its headers, subject and delivery count. */
export class JetStreamContext extends BaseRpcContext<[JsMsg]> {
  getMessage(): JsMsg {
    return this.args[0];
  }

  getSubject(): string {
    return this.args[0].subject;
  }
}

export class JetStreamServer extends Server implements CustomTransportStrategy {
  private connection?: NatsConnection;
  private messages?: ConsumerMessages;

  constructor(private readonly options: JetStreamServerOptions) {
    super();
  }

  async listen(callback: (error?: unknown) => void): Promise<void> {
    try {
      this.connection = await connect({ servers: this.options.servers });
      const consumer = await jetstream(this.connection).consumers.get(this.options.stream, this.options.durable);
      this.messages = await consumer.consume();
    } catch (error) {
      return callback(error);
    }
    callback();
    void this.deliver(this.messages);
  }

  private async deliver(messages: ConsumerMessages): Promise<void> {
    // Messages are handled concurrently, as the other transports do; the consumer's max_ack_pending bounds them.
    for await (const message of messages) void this.handle(message);
  }

  protected async handle(message: JsMsg): Promise<void> {
    const handler = this.getHandlerByPattern(message.subject);
    if (!handler) {
      this.logger.warn(`No @EventPattern() handler for ${message.subject}; the message is terminated.`);
      return message.term();
    }
    try {
      const result: unknown = await handler(message.json(), new JetStreamContext([message]));
      if (isObservable(result)) await lastValueFrom(result, { defaultValue: undefined });
      if (!settled(message)) message.ack();
    } catch (error) {
      this.logger.error(`${message.subject}: ${(error as Error).message}`, (error as Error).stack);
      if (!settled(message)) message.nak();
    }
  }

  on(): never {
    throw new Error('JetStreamServer has no events to listen to.');
  }

  unwrap<T>(): T {
    return this.connection as T;
  }

  async close(): Promise<void> {
    this.messages?.stop();
    await this.connection?.drain();
  }
}

/** Whether the message was acked, nakked or terminated already (the client's message keeps it in `didAck`). */
function settled(message: JsMsg): boolean {
  return (message as JsMsg & { didAck?: boolean }).didAck === true;
}
