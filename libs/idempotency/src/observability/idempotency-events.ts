import { Logger, type LogLevel } from '@nestjs/common';
import { createHash } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';

/**
 * The `node:diagnostics_channel` on which every outcome of the library is published, one message per
 * outcome ({@link IdempotencyOutcomeMessage}). One channel for all outcomes: a subscriber sees them all
 * in the order they happened and picks by `message.outcome`.
 *
 * @example
 * import { subscribe } from 'node:diagnostics_channel';
 * subscribe(IDEMPOTENCY_OUTCOME_CHANNEL, (message) => {
 *   const { outcome, route, addedMs } = message as IdempotencyOutcomeMessage;
 * });
 */
export const IDEMPOTENCY_OUTCOME_CHANNEL = 'nestjs-idempotency:outcome';

/**
 * Every outcome the library publishes. Each request that reaches the store ends with
 * exactly one of the answers (`claimed`, `replayed`, `rejected-in-flight`, `key-reused`, `released`,
 * `completion-fenced`, `stale-skipped`, `store-unavailable`); `waited` and `lease-taken-over` are
 * published before that answer, when they happen.
 *
 * @example
 * const counts = Object.fromEntries(IDEMPOTENCY_OUTCOMES.map((outcome) => [outcome, 0]));
 */
export const IDEMPOTENCY_OUTCOMES = [
  'claimed',
  'replayed',
  'rejected-in-flight',
  'waited',
  'key-reused',
  'released',
  'lease-taken-over',
  'completion-fenced',
  'stale-skipped',
  'store-unavailable',
] as const;

/**
 * - `claimed`: the request claimed the key, ran the handler and its answer is stored.
 * - `replayed`: the stored answer was sent again; the handler did not run.
 * - `rejected-in-flight`: a duplicate arrived while the first still ran (409), or waited past `waitTimeout`.
 * - `waited`: a duplicate waited for the first (`onInFlight: 'wait'`, transaction mode), then got an answer.
 * - `key-reused`: the key came with another request (fingerprint mismatch, 422).
 * - `released`: the handler ran but its answer is not kept (a failure, a status `storeIf` refuses): the
 *   key is given back, at once, or at the end of its lease when the handler may still take effect.
 * - `lease-taken-over`: a claim whose lease ran out was taken over by this attempt.
 * - `completion-fenced`: an attempt whose lease was taken over finished; its answer is not stored.
 * - `stale-skipped`: an ordered route skipped an event older than the newest applied.
 * - `store-unavailable`: the store could not be reached (503), or could not store an answer.
 *
 * @example
 * const alarming: IdempotencyOutcome[] = ['completion-fenced', 'store-unavailable'];
 */
export type IdempotencyOutcome = (typeof IDEMPOTENCY_OUTCOMES)[number];

/**
 * What is published for each outcome. It never holds the key, the body, or the tenant part of a scope.
 *
 * @example
 * { outcome: 'claimed', route: 'POST /orders', keyHash: '5d41402abc4b2a76', attempt: 1, status: 201, addedMs: 2.41 }
 */
export interface IdempotencyOutcomeMessage {
  readonly outcome: IdempotencyOutcome;
  /**
   * The scope without what a `scope` function added (after `#`): the route (`POST /orders`,
   * `stripe:POST /webhooks/stripe`), or the scope of `run()` (`fulfilment`, `job:fulfilment`).
   */
  readonly route: string;
  /** {@link idempotencyKeyHash} of the whole scope and the key: the same key gives the same hash. */
  readonly keyHash: string;
  /** Which attempt on the key held the claim (1, then 2 after a takeover...), where there is a claim. */
  readonly attempt?: number;
  /** The HTTP status the client gets (HTTP only; the stored one for `claimed` and `replayed`). */
  readonly status?: number;
  /**
   * On the answer that ends a request: the time the library added to it, in ms (the claim, waits
   * included, and storing the answer or giving the key back; not the handler's own time).
   */
  readonly addedMs?: number;
  /** How long a duplicate waited for the first request, in ms (`waited`, and a `rejected-in-flight` that waited). */
  readonly waitedMs?: number;
}

/**
 * A short hash of (scope, key) that identifies a record without revealing it: the first 16 hex digits
 * of sha-256 over the scope, a NUL and the key. Anyone who knows the scope and the key can compute it
 * (to find a record's messages and log lines); neither can be read from it. A key easy to guess (a
 * small counter) can be found by hashing the guesses: use random keys where that matters.
 *
 * @example
 * idempotencyKeyHash('POST /orders', 'order-1'); // the keyHash of that request's messages and log lines
 */
export function idempotencyKeyHash(scope: string, key: string): string {
  return createHash('sha256').update(scope).update('\u0000').update(key).digest('hex').slice(0, 16);
}

/** The part of a scope that names the route or the work; what a `scope` function added (a tenant) is left out. */
export function scopeLabel(scope: string): string {
  const tenant = scope.indexOf('#');
  return tenant === -1 ? scope : scope.slice(0, tenant);
}

const outcomeChannel = diagnosticsChannel.channel(IDEMPOTENCY_OUTCOME_CHANNEL);

/**
 * Which module published a message (its coordinator): the channel is the process's, and two apps in one
 * process (tests, an app and its workers) each count only their own in their metrics.
 */
const origins = new WeakMap<IdempotencyOutcomeMessage, object>();

/** The module that published `message`, where it says; `undefined` for a message published by anything else. */
export function originOf(message: IdempotencyOutcomeMessage): object | undefined {
  return origins.get(message);
}

/**
 * Calls `listener` with each outcome published in this process; returns the function that stops it.
 * The listener runs inside the request: keep it quick, and never let it throw (Node reports a
 * subscriber's error as an uncaught exception).
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

/** Routine outcomes log at debug; what an operator should look at, higher. */
const LOG_LEVELS: Record<IdempotencyOutcome, LogLevel> = {
  claimed: 'debug',
  replayed: 'debug',
  'rejected-in-flight': 'debug',
  waited: 'debug',
  'key-reused': 'log',
  released: 'debug',
  'lease-taken-over': 'warn',
  'completion-fenced': 'warn',
  'stale-skipped': 'debug',
  'store-unavailable': 'error',
};

const SAYINGS: Record<IdempotencyOutcome, string> = {
  claimed: 'claimed, answer stored',
  replayed: 'replayed the stored answer',
  'rejected-in-flight': 'refused, the first request with this key is still running',
  waited: 'waited for the first request with this key',
  'key-reused': 'refused, the key was used for a different request',
  released: 'released, the next attempt runs again',
  'lease-taken-over': 'lease ran out; this attempt takes the claim over',
  'completion-fenced': 'late completion fenced: the lease ran out and another attempt took the key over; this answer is not stored',
  'stale-skipped': 'stale event skipped',
  'store-unavailable': 'idempotency store unavailable',
};

const logger = new Logger('Idempotency');

/** What a request or `run()` tells about one outcome; the rest comes from its {@link OutcomeReport}. */
export interface OutcomeDetails {
  status?: number;
  /** For the log line (message and stack); never published. */
  error?: Error;
}

/**
 * The outcomes of one request (or `run()`) on one key: each is published and logged with the key
 * hashed and the tenant left out, and the answer that ends it carries the time the library took.
 * Nothing is hashed or formatted while nobody subscribes and the outcome's log level is off.
 */
export class OutcomeReport {
  /** Which attempt holds the claim, once there is one. */
  attempt?: number;
  private libraryMs = 0;
  private waitedMs = 0;

  constructor(
    private readonly scope: string,
    private readonly key: string,
    /** Whether statuses are HTTP answers (not `run()`'s placeholders). */
    private readonly http: boolean,
    /** The module that publishes, for {@link originOf}. */
    private readonly origin: object,
  ) {}

  /** Runs work of the library for this request, counting its time (and so its waits) as added. */
  async timed<T>(work: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await work();
    } finally {
      this.libraryMs += performance.now() - started;
    }
  }

  /** Counts time spent waiting for another request with the same key. */
  waited(ms: number): void {
    this.waitedMs += ms;
  }

  get hasWaited(): boolean {
    return this.waitedMs > 0;
  }

  /** `POST /orders key 5d41402abc4b2a76`: the request in a log line of its own, without the key or the tenant. */
  describe(): string {
    return `${scopeLabel(this.scope)} key ${idempotencyKeyHash(this.scope, this.key)}`;
  }

  /** An event along the way (`waited`, `lease-taken-over`). */
  note(outcome: 'waited' | 'lease-taken-over'): void {
    this.emit(outcome, {}, false);
  }

  /** The answer that ends the request. */
  answer(outcome: Exclude<IdempotencyOutcome, 'waited' | 'lease-taken-over'>, details: OutcomeDetails = {}): void {
    this.emit(outcome, details, true);
  }

  private emit(outcome: IdempotencyOutcome, details: OutcomeDetails, final: boolean): void {
    const level = LOG_LEVELS[outcome];
    const publishing = outcomeChannel.hasSubscribers;
    const logging = Logger.isLevelEnabled(level);
    if (!publishing && !logging) return;
    const message: { -readonly [Field in keyof IdempotencyOutcomeMessage]: IdempotencyOutcomeMessage[Field] } = {
      outcome,
      route: scopeLabel(this.scope),
      keyHash: idempotencyKeyHash(this.scope, this.key),
    };
    if (this.attempt !== undefined) message.attempt = this.attempt;
    if (this.http && details.status !== undefined) message.status = details.status;
    if (final) message.addedMs = round(this.libraryMs);
    if (this.waitedMs > 0 && (outcome === 'waited' || outcome === 'rejected-in-flight')) message.waitedMs = round(this.waitedMs);
    Object.freeze(message);
    if (publishing) {
      origins.set(message, this.origin);
      outcomeChannel.publish(message);
    }
    if (logging) log(level, message, details.error);
  }
}

function log(level: LogLevel, message: IdempotencyOutcomeMessage, error: Error | undefined): void {
  const facts = [
    message.attempt !== undefined && `attempt ${message.attempt}`,
    message.status !== undefined && `status ${message.status}`,
    message.waitedMs !== undefined && `waited ${message.waitedMs} ms`,
    message.addedMs !== undefined && `${message.addedMs} ms added`,
  ].filter(Boolean);
  const line =
    `${message.route} key ${message.keyHash}: ${SAYINGS[message.outcome]}` +
    (error ? `: ${error.message}` : '') +
    (facts.length > 0 ? ` (${facts.join(', ')}).` : '.');
  if (level === 'error' && error?.stack) logger.error(line, error.stack);
  else logger[level](line);
}

/** Milliseconds to two decimals: enough for a histogram, short in a log line. */
function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
