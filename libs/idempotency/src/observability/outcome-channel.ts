import { Logger } from '@nestjs/common';
import diagnosticsChannel, { type ChannelListener } from 'node:diagnostics_channel';
import { IDEMPOTENCY_OUTCOME_CHANNEL, type IdempotencyOutcomeMessage } from './idempotency-events';

const logger = new Logger('Idempotency');

/** Held for the life of the process: `diagnostics_channel.channel(name)` then always returns this same object. */
const outcomeChannel = diagnosticsChannel.channel(IDEMPOTENCY_OUTCOME_CHANNEL);

const guardOf = new WeakMap<ChannelListener, ChannelListener>();
const guards = new WeakSet<ChannelListener>();

/**
 * A subscriber as the channel calls it: its error is caught and logged once. Node would otherwise report it
 * as an uncaught exception, which ends the process in the middle of a request: an observer must never
 * change an answer or take the app down.
 */
function guarded(subscriber: ChannelListener): ChannelListener {
  let failed = false;
  const fail = (error: unknown) => {
    if (failed) return;
    failed = true;
    const { message, stack } = error instanceof Error ? error : new Error(String(error));
    logger.error(`A subscriber of ${IDEMPOTENCY_OUTCOME_CHANNEL} failed; its later errors are not logged: ${message}`, stack);
  };
  const guard: ChannelListener = (message, name) => {
    try {
      // An async subscriber's rejection would be an unhandled rejection, which ends the process too.
      const result = subscriber(message, name) as unknown;
      if (result instanceof Promise) result.catch(fail);
    } catch (error) {
      fail(error);
    }
  };
  guards.add(guard);
  return guard;
}

// Every subscription, through `diagnostics_channel.subscribe()` or the channel object, goes through here:
// Node's own subscribe() re-enters it once after activating the channel, with the guard already in hand.
const channelMethods = outcomeChannel as unknown as {
  subscribe: (this: object, subscriber: ChannelListener) => void;
  unsubscribe: (this: object, subscriber: ChannelListener) => boolean;
};
channelMethods.subscribe = function (this: object, subscriber: ChannelListener): void {
  const inherited = (Object.getPrototypeOf(this) as typeof channelMethods).subscribe;
  if (guards.has(subscriber)) return inherited.call(this, subscriber);
  let guard = guardOf.get(subscriber);
  if (!guard) guardOf.set(subscriber, (guard = guarded(subscriber)));
  return inherited.call(this, guard);
};
channelMethods.unsubscribe = function (this: object, subscriber: ChannelListener): boolean {
  const inherited = (Object.getPrototypeOf(this) as typeof channelMethods).unsubscribe;
  return inherited.call(this, guardOf.get(subscriber) ?? subscriber);
};

/**
 * Which module published a message (its coordinator): the channel is the process's, and two apps in one
 * process (tests, an app and its workers) each count only their own in their metrics.
 */
const origins = new WeakMap<IdempotencyOutcomeMessage, object>();

/** The module that published `message`, where it says; `undefined` for a message published by anything else. */
export function originOf(message: IdempotencyOutcomeMessage): object | undefined {
  return origins.get(message);
}

/** Whether anybody listens: nothing is hashed or built for the channel otherwise. */
export function hasOutcomeSubscribers(): boolean {
  return outcomeChannel.hasSubscribers;
}

/** Publishes one outcome of `origin`'s module; a subscriber's error never reaches the caller. */
export function publishOutcome(message: IdempotencyOutcomeMessage, origin: object): void {
  origins.set(message, origin);
  outcomeChannel.publish(message);
}

/**
 * Calls `listener` with each outcome published in this process; returns the function that stops it.
 * The listener runs inside the request: keep it quick. An error it throws is logged once and ignored.
 *
 * @example
 * const stop = onIdempotencyOutcome((message) => message.outcome === 'store-unavailable' && page(message.route));
 */
export function onIdempotencyOutcome(listener: (message: IdempotencyOutcomeMessage) => void): () => void {
  const subscriber = (message: unknown) => listener(message as IdempotencyOutcomeMessage);
  diagnosticsChannel.subscribe(IDEMPOTENCY_OUTCOME_CHANNEL, subscriber);
  return () => {
    diagnosticsChannel.unsubscribe(IDEMPOTENCY_OUTCOME_CHANNEL, subscriber);
  };
}
