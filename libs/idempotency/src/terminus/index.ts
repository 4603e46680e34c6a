export { IdempotencyHealthIndicator, type IdempotencyHealthOptions } from './idempotency-health.indicator';
export { IdempotencyHealthModule } from './idempotency-health.module';
