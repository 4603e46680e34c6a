import { Module } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { IdempotencyHealthIndicator } from './idempotency-health.indicator';

/**
 * Provides {@link IdempotencyHealthIndicator} to the module that imports it. Needs `IdempotencyModule`
 * in the app (it is global); the health endpoint itself comes from `TerminusModule`.
 *
 * @example
 * \@Module({
 *   imports: [TerminusModule, IdempotencyHealthModule],
 *   controllers: [HealthController],
 * })
 * export class HealthModule {}
 */
@Module({
  providers: [HealthIndicatorService, IdempotencyHealthIndicator],
  exports: [IdempotencyHealthIndicator],
})
export class IdempotencyHealthModule {}
