import { Logger, type LogLevel } from '@nestjs/common';
import { performance } from 'node:perf_hooks';
import { idempotencyKeyHash, type IdempotencyOutcome, type IdempotencyOutcomeMessage, scopeLabel } from './idempotency-events';
import { hasOutcomeSubscribers, publishOutcome } from './outcome-channel';

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
    const publishing = hasOutcomeSubscribers();
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
    if (publishing) publishOutcome(message, this.origin);
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
  try {
    if (level === 'error' && error?.stack) logger.error(line, error.stack);
    else logger[level](line);
  } catch (failure) {
    // A logger that throws must not change an answer; Node's warning says so once, where the logger cannot.
    if (loggerFailed) return;
    loggerFailed = true;
    process.emitWarning(`The logger of nestjs-idempotency threw; its later errors are ignored: ${(failure as Error).message}`);
  }
}

let loggerFailed = false;

/** Milliseconds to two decimals: enough for a histogram, short in a log line. */
function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
