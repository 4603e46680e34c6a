import { type Duration, toMilliseconds } from '../../duration';
import { IdempotencyConfigurationError } from '../../errors/configuration.errors';

export const IDEMPOTENCY_PARTITIONED_TABLE = 'idempotency_partitioned_records';

/** Module option `partitioning`: records in a table partitioned by time, whose old partitions are dropped whole. */
export interface PartitioningOptions {
  /**
   * The time one partition covers (by the records' creation time): a whole number of minutes. Default `'1d'`.
   * A claim looks its key up in every partition, so keep `ttl / interval` small (a few partitions).
   */
  interval?: Duration;
  /** How many partitions are kept ready after the current one. Default 2. */
  ahead?: number;
}

/** {@link PartitioningOptions} checked, in ms. */
export interface PartitionPlan {
  intervalMs: number;
  ahead: number;
}

export function planPartitions(options: PartitioningOptions): PartitionPlan {
  const intervalMs = toMilliseconds(options.interval ?? '1d', 'partitioning.interval');
  if (intervalMs < 60_000 || intervalMs % 60_000 !== 0) {
    throw new IdempotencyConfigurationError(
      `partitioning.interval must be a whole number of minutes, at least '1m', not ${JSON.stringify(options.interval)}. ` +
        `'1d' suits the default ttl of 24h.`,
    );
  }
  const ahead = options.ahead ?? 2;
  if (!Number.isInteger(ahead) || ahead < 1) {
    throw new IdempotencyConfigurationError(`partitioning.ahead must be a whole number of partitions, at least 1, not ${String(options.ahead)}.`);
  }
  return { intervalMs, ahead };
}
