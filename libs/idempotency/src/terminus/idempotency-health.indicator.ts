import { Inject, Injectable } from '@nestjs/common';
import { type HealthIndicatorResult, HealthIndicatorService } from '@nestjs/terminus';
import { type Duration, toTimerMilliseconds } from '../duration';
import { IDEMPOTENCY_STORE, type IdempotencyStore } from '../storage/idempotency-store';

/** Options of {@link IdempotencyHealthIndicator.isHealthy}. */
export interface IdempotencyHealthOptions {
  /** The longest the store may take to answer before the check says `down`. Default `'1s'`. */
  timeout?: Duration;
}

const DEFAULT_TIMEOUT: Duration = '1s';

/**
 * A `@nestjs/terminus` health indicator for the idempotency store: `up` with the time the store took to
 * answer a look-up, `down` with the reason (the database is unreachable, the table is missing, or the
 * answer took longer than `timeout`). While it is down, idempotent routes answer 503.
 *
 * Add it to the providers of a module that imports `TerminusModule` (or import `IdempotencyHealthModule`).
 *
 * @example
 * \@Controller('health')
 * export class HealthController {
 *   constructor(private readonly health: HealthCheckService, private readonly idempotency: IdempotencyHealthIndicator) {}
 *
 *   \@Get()
 *   \@HealthCheck()
 *   check() {
 *     return this.health.check([() => this.idempotency.isHealthy('idempotency', { timeout: '500ms' })]);
 *   }
 * }
 */
@Injectable()
export class IdempotencyHealthIndicator {
  constructor(
    @Inject(IDEMPOTENCY_STORE) private readonly store: IdempotencyStore,
    private readonly health: HealthIndicatorService,
  ) {}

  /**
   * Looks up a record that cannot exist: the cheapest call that goes to the store (one indexed read on
   * PostgreSQL). Uses only `check(key).up()/down()` of `HealthIndicatorService`, which terminus 11 and 12 share.
   */
  async isHealthy<const Key extends string = 'idempotency'>(
    key: Key = 'idempotency' as Key,
    options: IdempotencyHealthOptions = {},
  ): Promise<HealthIndicatorResult<Key>> {
    const timeoutMs = toTimerMilliseconds(options.timeout ?? DEFAULT_TIMEOUT, 'IdempotencyHealthIndicator.isHealthy(): timeout');
    const indicator = this.health.check(key);
    const started = performance.now();
    const responseTime = () => Math.round(performance.now() - started);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the store did not answer within ${timeoutMs}ms`)), timeoutMs);
    });
    try {
      // A look-up still running after the timeout is left to finish; race() has already taken its outcome in hand.
      await Promise.race([this.store.find('', ''), timedOut]);
      return indicator.up({ responseTime: responseTime() });
    } catch (error) {
      return indicator.down({ message: reasonOf(error), responseTime: responseTime() });
    } finally {
      clearTimeout(timer);
    }
  }
}

/** What went wrong, in words: an error's message (errors from Node's sockets included), else the value. */
function reasonOf(error: unknown): string {
  const message = (error as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' && message !== '' ? message : String(error);
}
