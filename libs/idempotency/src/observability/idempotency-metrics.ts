import { Logger, type OnModuleDestroy } from '@nestjs/common';
import type { Counter, Histogram, Registry } from 'prom-client';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { loadOptionalPeer } from '../optional-peer';
import type { IdempotencyOutcomeMessage } from './idempotency-events';
import { onIdempotencyOutcome, originOf } from './outcome-channel';

/**
 * The `metrics` option of `IdempotencyModule.forRoot()`, for Prometheus through `prom-client`.
 *
 * @example
 * IdempotencyModule.forRoot({ metrics: { registry: myRegistry, prefix: 'shop_', buckets: [0.001, 0.01, 0.1, 1] } })
 */
export interface IdempotencyMetricsOptions {
  /** Where the metrics are registered: a prom-client `Registry`. Default: prom-client's global `register`. */
  registry?: MetricsRegistry;
  /** Put before each metric's name (`shop_` makes `shop_idempotency_outcomes_total`). Default none. */
  prefix?: string;
  /** Buckets of `idempotency_added_seconds`, in seconds. Default from 1 ms to 10 s. */
  buckets?: number[];
}

/**
 * A prom-client `Registry`, as the options name it: prom-client is an optional peer, and the shipped types
 * compile without it. prom-client's own registries fit.
 */
export interface MetricsRegistry {
  getSingleMetric(name: string): unknown;
  metrics(): Promise<string>;
}

/** From a replay kept in process (well under 1 ms) to a duplicate that waits out the default `waitTimeout`. */
export const DEFAULT_ADDED_SECONDS_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

type PromClient = Pick<typeof import('prom-client'), 'register' | 'Counter' | 'Histogram'>;

interface Subscription {
  /** The modules whose outcomes it counts: one per app that counts into this registry under this name. */
  origins: Set<object>;
  stop: () => void;
}

/**
 * One subscription per registry and metric name: two apps in one process that share a registry (tests,
 * or an app and its workers) count each outcome once, and the second reuses the first one's metrics.
 * Apps with registries of their own count only their own outcomes.
 */
const subscriptions = new WeakMap<Registry, Map<string, Subscription>>();

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;

/**
 * Counts the outcomes published on `IDEMPOTENCY_OUTCOME_CHANNEL` as Prometheus metrics, for as long as the
 * module lives: `idempotency_outcomes_total{outcome, route}`, a counter of every outcome, and
 * `idempotency_added_seconds{outcome, route}`, a histogram of the time the library added to each request
 * (the claim, waits included, and storing the answer; not the handler's own time). It counts the outcomes
 * of its own module (`origin`, the module's coordinator), and of the other apps that share its registry.
 */
export class IdempotencyMetrics implements OnModuleDestroy {
  private stopped = false;

  private constructor(
    private readonly registry: Registry,
    private readonly counterName: string,
    private readonly origin: object,
  ) {}

  /** Loads prom-client and subscribes to the outcomes `origin` publishes; `null` when `metrics` is off. */
  static async start(option: boolean | IdempotencyMetricsOptions | undefined, origin: object): Promise<IdempotencyMetrics | null> {
    if (!option) return null;
    const options = option === true ? {} : option;
    const prefix = options.prefix ?? '';
    if (prefix !== '' && !METRIC_NAME.test(prefix)) {
      throw new IdempotencyConfigurationError(
        `metrics.prefix ${JSON.stringify(prefix)} cannot start a Prometheus metric name: use letters, digits, _ and : (not a digit first).`,
      );
    }
    const buckets = options.buckets ?? DEFAULT_ADDED_SECONDS_BUCKETS;
    if (buckets.length === 0 || buckets.some((bound, index) => !Number.isFinite(bound) || (index > 0 && bound <= buckets[index - 1]))) {
      throw new IdempotencyConfigurationError(`metrics.buckets must be finite numbers of seconds in increasing order, not ${JSON.stringify(buckets)}.`);
    }
    const client = await loadOptionalPeer<PromClient>('prom-client', 'The metrics option of IdempotencyModule');
    // Given as a MetricsRegistry, which only prom-client's Registry is.
    const registry = (options.registry as Registry | undefined) ?? client.register;
    const counterName = `${prefix}idempotency_outcomes_total`;
    const byName = subscriptions.get(registry) ?? new Map<string, Subscription>();
    subscriptions.set(registry, byName);
    const existing = byName.get(counterName);
    if (existing) {
      existing.origins.add(origin);
    } else {
      const origins = new Set<object>([origin]);
      const record = recorder(client, registry, prefix, buckets);
      const stop = onIdempotencyOutcome((message) => {
        const from = originOf(message);
        if (from && origins.has(from)) record(message);
      });
      byName.set(counterName, { origins, stop });
    }
    return new IdempotencyMetrics(registry, counterName, origin);
  }

  /** Unsubscribes once the last module counting into this registry stops; the metrics stay registered. */
  onModuleDestroy(): void {
    if (this.stopped) return;
    this.stopped = true;
    const byName = subscriptions.get(this.registry);
    const subscription = byName?.get(this.counterName);
    if (!subscription) return;
    subscription.origins.delete(this.origin);
    if (subscription.origins.size > 0) return;
    subscription.stop();
    byName!.delete(this.counterName);
  }
}

/** The subscriber that moves the metrics; it never throws, as a subscriber's error would crash the process. */
function recorder(client: PromClient, registry: Registry, prefix: string, buckets: number[]): (message: IdempotencyOutcomeMessage) => void {
  const labelNames = ['outcome', 'route'] as const;
  const outcomes = reuse(
    registry,
    `${prefix}idempotency_outcomes_total`,
    'inc',
    labelNames,
    () =>
      new client.Counter({
        name: `${prefix}idempotency_outcomes_total`,
        help: 'Outcomes of idempotent requests and runs (claimed, replayed, rejected-in-flight, waited, key-reused, ...), by route.',
        labelNames,
        registers: [registry],
      }),
  );
  const added = reuse(
    registry,
    `${prefix}idempotency_added_seconds`,
    'observe',
    labelNames,
    () =>
      new client.Histogram({
        name: `${prefix}idempotency_added_seconds`,
        help: 'Time the idempotency library added to a request: the claim, waits included, and storing the answer; not the handler.',
        labelNames,
        buckets,
        registers: [registry],
      }),
  );
  const logger = new Logger('Idempotency');
  let failed = false;
  return (message) => {
    try {
      const labels = { outcome: message.outcome, route: message.route };
      outcomes.inc(labels);
      if (message.addedMs !== undefined) added.observe(labels, message.addedMs / 1000);
    } catch (error) {
      if (failed) return;
      // Once: a broken metric would otherwise log on every request.
      failed = true;
      logger.error(`Recording idempotency metrics failed; later failures are not logged: ${(error as Error).message}`, (error as Error).stack);
    }
  };
}

/** The metric of that name already in the registry (another app in this process made it), or a new one. */
function reuse<Metric extends Counter<'outcome' | 'route'> | Histogram<'outcome' | 'route'>>(
  registry: Registry,
  name: string,
  method: 'inc' | 'observe',
  labelNames: readonly string[],
  create: () => Metric,
): Metric {
  const found = registry.getSingleMetric(name) as (Partial<Record<typeof method, unknown>> & { labelNames?: string[] }) | undefined;
  if (!found) return create();
  const sameLabels = found.labelNames !== undefined && [...found.labelNames].sort().join() === [...labelNames].sort().join();
  if (typeof found[method] !== 'function' || !sameLabels) {
    throw new IdempotencyConfigurationError(
      `The registry already holds a metric named ${name} of another kind or with other labels: give the metrics option a prefix ` +
        `(metrics: { prefix: 'myapp_' }), or another registry.`,
    );
  }
  return found as unknown as Metric;
}
