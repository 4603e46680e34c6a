import { Logger } from '@nestjs/common';

/**
 * What the library reads of a transport's context, by shape, so that it needs none of the transports' packages:
 * Nest's `RmqContext` (an amqplib message and channel), `NatsContext` (core NATS headers), and a context whose
 * `getMessage()` is a JetStream message (`ack()`, `nak(delay)`, `term()`), as a JetStream transport gives it.
 */
interface AmqpMessage {
  fields: { deliveryTag: number };
  properties: { messageId?: unknown; headers?: Record<string, unknown> };
}

interface AmqpChannel {
  ack(message: AmqpMessage): void;
  nack(message: AmqpMessage, allUpTo?: boolean, requeue?: boolean): void;
}

interface NatsHeaders {
  get(name: string): string;
}

interface JetStreamMessage {
  ack(): void;
  nak(delayMs?: number): void;
  term(reason?: string): void;
  seq: number;
  headers?: NatsHeaders;
  info: { stream: string };
}

/** How a message is settled with its broker, where the library does it (`ack: true`). */
export interface Acknowledger {
  /** Done: the broker forgets it. */
  ack(): void;
  /** Back to the queue after `delayMs`, for a later delivery. */
  redeliver(delayMs: number): void;
  /** Never deliverable (no key, a key reused): to the dead-letter queue where there is one, else dropped. */
  reject(): void;
}

const logger = new Logger('Idempotency');

function call<T>(target: unknown, method: string): T | undefined {
  const fn = (target as Record<string, unknown> | null | undefined)?.[method];
  return typeof fn === 'function' ? (fn.call(target) as T) : undefined;
}

function amqpOf(context: unknown): { message: AmqpMessage; channel: AmqpChannel } | undefined {
  const message = call<AmqpMessage>(context, 'getMessage');
  const channel = call<AmqpChannel>(context, 'getChannelRef');
  if (!message?.fields || !message.properties || typeof channel?.ack !== 'function') return undefined;
  return { message, channel };
}

function jetStreamOf(context: unknown): JetStreamMessage | undefined {
  const message = call<JetStreamMessage>(context, 'getMessage');
  return typeof message?.nak === 'function' && typeof message.ack === 'function' && message.info ? message : undefined;
}

function header(headers: NatsHeaders | undefined, name: string): string | undefined {
  const value = typeof headers?.get === 'function' ? headers.get(name) : undefined;
  return value === '' ? undefined : value;
}

/** The transport's own id of the message: AMQP `messageId`, `Nats-Msg-Id`, a JetStream message's stream sequence. */
export function messageIdOf(context: unknown): string | undefined {
  const amqp = amqpOf(context);
  if (amqp) {
    const id = amqp.message.properties.messageId;
    return typeof id === 'string' && id !== '' ? id : undefined;
  }
  const jetStream = jetStreamOf(context);
  if (jetStream) return header(jetStream.headers, 'Nats-Msg-Id') ?? `${jetStream.info.stream}:${jetStream.seq}`;
  return header(call<NatsHeaders>(context, 'getHeaders'), 'Nats-Msg-Id');
}

/** The pattern (routing key, subject) the message came with, where the context says it. */
export function patternOf(context: unknown): string | undefined {
  return call<string>(context, 'getPattern') ?? call<string>(context, 'getSubject');
}

/** Settles the message with its broker, or `undefined` where the context gives no way to (core NATS, TCP...). */
export function acknowledgerOf(context: unknown): Acknowledger | undefined {
  const amqp = amqpOf(context);
  if (amqp) {
    const { channel, message } = amqp;
    return {
      ack: () => settle('ack', () => channel.ack(message)),
      redeliver: (delayMs) => setTimeout(() => settle('nack', () => channel.nack(message, false, true)), delayMs).unref(),
      reject: () => settle('nack', () => channel.nack(message, false, false)),
    };
  }
  const jetStream = jetStreamOf(context);
  if (!jetStream) return undefined;
  return {
    ack: () => settle('ack', () => jetStream.ack()),
    redeliver: (delayMs) => settle('nak', () => jetStream.nak(delayMs)),
    reject: () => settle('term', () => jetStream.term('idempotency: not deliverable')),
  };
}

/** A channel closed meanwhile: the broker redelivers the message to another consumer, which the claim answers. */
function settle(what: string, act: () => void): void {
  try {
    act();
  } catch (error) {
    logger.warn(`Could not ${what} a message (its channel closed?); the broker will redeliver it: ${(error as Error).message}`);
  }
}
