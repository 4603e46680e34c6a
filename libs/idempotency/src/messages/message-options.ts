import type { Duration } from '../duration';
import type { IdempotentOptions } from '../idempotency.options';

/**
 * Reads a key (or a scope's tenant) from a message: its payload and the transport's context (`RmqContext`,
 * `NatsContext`, ...), as the handler gets them. `undefined` or `null`: the message has none.
 *
 * @example
 * (data: OrderShipped, context: RmqContext) => context.getMessage().properties.headers['x-event-id']
 */
export type MessageKeyFunction<TPayload = unknown, TContext = unknown> = (data: TPayload, context: TContext) => unknown;

/**
 * One place a message's key can come from: `'message-id'` (AMQP's `messageId` property; NATS's
 * `Nats-Msg-Id` header; a JetStream message's id), `{ path: 'order.id' }` (a field of the payload),
 * `'payload-hash'` (sha-256 of the pattern and the canonical payload) or a function of the payload and context.
 */
export type MessageKeySourceItem<TPayload = unknown, TContext = unknown> =
  'message-id' | 'payload-hash' | { path: string } | MessageKeyFunction<TPayload, TContext>;

/** One source, or several of which the first that yields a key wins. Default `'message-id'`. */
export type MessageKeySource<TPayload = unknown, TContext = unknown> =
  MessageKeySourceItem<TPayload, TContext> | ReadonlyArray<MessageKeySourceItem<TPayload, TContext>>;

/**
 * `@Idempotent()` on an `@EventPattern()` or `@MessagePattern()` handler. The lease, TTL, wait and
 * transaction options mean what they mean over HTTP; the HTTP-only ones (`storeIf`, `replayHeaders`, `order`)
 * stop the app at start when given here.
 *
 * @example
 * \@EventPattern('order.shipped')
 * \@Idempotent({ key: 'message-id', ack: true, transaction: true })
 * shipped(@Payload() event: OrderShipped, @IdempotentTransaction() em: EntityManager) { ... }
 */
export interface IdempotentMessageOptions<TPayload = unknown, TContext = unknown> extends Pick<
  IdempotentOptions,
  'ttl' | 'lease' | 'maxLease' | 'onInFlight' | 'waitTimeout' | 'transaction' | 'required' | 'maxResponseBytes'
> {
  /** Where the key comes from. Default `'message-id'` (the module's `key` default is for HTTP routes). */
  key?: MessageKeySource<TPayload, TContext>;
  /** Adds a tenant to the scope (the pattern). */
  scope?: (data: TPayload, context: TContext) => string | number | undefined | null;
  /** Whether a duplicate must carry the same payload: `true` (default, its canonical JSON), `false`, or your own hash. */
  fingerprint?: boolean | ((data: TPayload, context: TContext) => string);
  /**
   * The library acknowledges the message (RabbitMQ `ack`/`nack`, JetStream `ack`/`nak`) once its claim has ended:
   * for consumers with manual acknowledgement (`noAck: false`), whose handlers then never ack themselves.
   * Default `false`: the transport acknowledges (RabbitMQ's default `noAck: true`) or the handler does.
   */
  ack?: boolean;
  /** With `ack`: how long a message waits before it goes back to the queue (in flight elsewhere, or failed). Default `'1s'`. */
  redeliveryDelay?: Duration;
}
