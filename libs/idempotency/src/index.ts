export { IdempotencyModule } from './idempotency.module';
export { IDEMPOTENCY_MODULE_OPTIONS } from './idempotency.module-definition';
export { Idempotent } from './idempotent.decorator';
export { IdempotentTransaction } from './idempotent-transaction.decorator';
export { IdempotencyInterceptor } from './idempotency.interceptor';
export { IdempotencyService, DEFAULT_RUN_SCOPE, type RunOptions } from './idempotency.service';
export {
  IDEMPOTENCY_DEFAULTS,
  storeFinalAnswers,
  type FingerprintFunction,
  type IdempotencyModuleOptions,
  type IdempotentOptions,
  type InFlightPolicy,
  type ScopeFunction,
} from './idempotency.options';
export type { IdempotencyRequest } from './idempotency-request';
export type { Duration } from './duration';
export { MAX_KEY_LENGTH, type KeyFunction, type KeySource, type KeySourceItem } from './keys/key-source';
export { PROVIDER_PRESETS, type ProviderPreset, type ProviderPresetName } from './keys/provider-presets';
export { REPLAYED_HEADER, DEFAULT_REPLAY_HEADERS } from './http/replay';
export {
  IdempotencyException,
  IdempotencyKeyInUseException,
  IdempotencyKeyInvalidException,
  IdempotencyKeyMissingException,
  IdempotencyKeyReusedException,
  IdempotencyStoreUnavailableException,
  PROBLEM_CONTENT_TYPE,
  type IdempotencyErrorCode,
  type IdempotencyProblem,
} from './errors/idempotency.errors';
export { IdempotencyConfigurationError, UnstorableResponseError } from './errors/configuration.errors';
export {
  IDEMPOTENCY_STORE,
  type ClaimOutcome,
  type ClaimRef,
  type ClaimRequest,
  type IdempotencyRecordView,
  type IdempotencyStore,
  type RecordState,
  type StoredResponse,
  type TransactionalClaim,
  type TransactionalClaimOutcome,
  type TransactionalIdempotencyStore,
} from './storage/idempotency-store';
export { TypeOrmIdempotencyStore } from './storage/typeorm-idempotency.store';
export { IdempotencyRecord, IDEMPOTENCY_TABLE } from './storage/idempotency-record.entity';
export { CreateIdempotencyRecords1763900000000 } from './storage/migrations/1763900000000-create-idempotency-records';

import { IdempotencyRecord } from './storage/idempotency-record.entity';
import { CreateIdempotencyRecords1763900000000 } from './storage/migrations/1763900000000-create-idempotency-records';

/**
 * Add to the DataSource's `entities` (needed with `synchronize: true`).
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'postgres', url, entities: [Order, ...idempotencyEntities], synchronize: true })
 */
export const idempotencyEntities = [IdempotencyRecord];

/**
 * Add to the DataSource's `migrations`: creates the records table.
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'postgres', url, migrations: [...idempotencyMigrations], migrationsRun: true })
 */
export const idempotencyMigrations = [CreateIdempotencyRecords1763900000000];
