import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import type { InFlightPolicy } from '../idempotency.options';

/** The shortest lease: a live handler renews it every third of it, which must fit between two renewals. */
export const SHORTEST_LEASE_MS = 1000;

/** A lease renewable by a live handler, and no longer than the longest a claim may be held. */
export function assertLease(leaseMs: number, maxLeaseMs: number, where: string): void {
  if (leaseMs < SHORTEST_LEASE_MS) {
    throw new IdempotencyConfigurationError(`${where}: lease must be at least 1s, so that a live handler can renew it; it is ${leaseMs} ms.`);
  }
  if (leaseMs > maxLeaseMs) {
    throw new IdempotencyConfigurationError(
      `${where}: lease (${leaseMs} ms) is longer than maxLease (${maxLeaseMs} ms), the longest a claim is held. ` +
        'Raise maxLease to at least the lease, or shorten the lease.',
    );
  }
}

export function assertInFlightPolicy(value: unknown, where: string): asserts value is InFlightPolicy {
  if (value !== 'reject' && value !== 'wait') {
    throw new IdempotencyConfigurationError(`${where}: onInFlight must be 'reject' or 'wait', not ${JSON.stringify(value)}.`);
  }
}

/** A count (bytes, rows): a whole number above zero. */
export function assertPositiveWhole(value: unknown, option: string, unit: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
    throw new IdempotencyConfigurationError(`${option} must be a positive whole number of ${unit}, not ${String(value)}.`);
  }
}

/** Runs each check, and throws once with the message of every one that failed: one start shows every mistake. */
export class ConfigurationProblems {
  private readonly messages: string[] = [];

  /** The check's result, or `undefined` when it failed with an {@link IdempotencyConfigurationError} (kept). */
  check<T>(check: () => T): T | undefined {
    try {
      return check();
    } catch (error) {
      if (!(error instanceof IdempotencyConfigurationError)) throw error;
      this.messages.push(error.message);
      return undefined;
    }
  }

  throwIfAny(): void {
    if (this.messages.length === 1) throw new IdempotencyConfigurationError(this.messages[0]);
    if (this.messages.length > 1) {
      throw new IdempotencyConfigurationError(
        `${this.messages.length} idempotency options are wrong:\n${this.messages.map((message) => `- ${message}`).join('\n')}`,
      );
    }
  }
}
