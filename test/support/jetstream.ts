import { randomBytes } from 'node:crypto';
import { connect, headers, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { NATS_URL } from './nats';

const NANOS_PER_MS = 1_000_000;

/** Streams of a test file's own, with a durable consumer each, and a publisher that sets the headers it is told. */
export class JetStreamBroker {
  private readonly streams: string[] = [];

  private constructor(
    private readonly connection: NatsConnection,
    private readonly manager: JetStreamManager,
  ) {}

  static async open(): Promise<JetStreamBroker> {
    const connection = await connect({ servers: NATS_URL });
    return new JetStreamBroker(connection, await jetstreamManager(connection));
  }

  /**
   * A stream (`<NAME>.>`) and its durable consumer, `ackWaitMs` before an unacked message is delivered again.
   * The duplicate window is the shortest the server takes (100 ms).
   */
  async stream(label: string, ackWaitMs: number): Promise<{ stream: string; durable: string }> {
    const stream = `IDEMPOTENCY_${label.toUpperCase()}_${randomBytes(4).toString('hex')}`;
    this.streams.push(stream);
    await this.manager.streams.add({ name: stream, subjects: [`${stream}.>`], duplicate_window: 100 * NANOS_PER_MS });
    await this.manager.consumers.add(stream, { durable_name: 'consumer', ack_policy: AckPolicy.Explicit, ack_wait: ackWaitMs * NANOS_PER_MS });
    return { stream, durable: 'consumer' };
  }

  /** Publishes JSON, with `Nats-Msg-Id` when `messageId` is given; false when the stream took it for a duplicate. */
  async publish(subject: string, data: unknown, messageId?: string): Promise<boolean> {
    const headerSet = headers();
    if (messageId) headerSet.set('Nats-Msg-Id', messageId);
    return !(await jetstream(this.connection).publish(subject, JSON.stringify(data), { headers: headerSet })).duplicate;
  }

  /** Messages of the durable consumer not yet acknowledged (waiting or delivered and unacked). */
  async pending(stream: string): Promise<number> {
    const info = await this.manager.consumers.info(stream, 'consumer');
    return info.num_pending + info.num_ack_pending;
  }

  async close(): Promise<void> {
    for (const stream of this.streams) await this.manager.streams.delete(stream);
    await this.connection.drain();
  }
}
