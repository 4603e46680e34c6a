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
  type EventOrder,
  type EventVersion,
  type InFlightPolicy,
  type RedisStoreOptions,
  type ScopeFunction,
} from './idempotency.options';
export type { IdempotencyRequest } from './idempotency-request';
export type { Duration } from './duration';
export { MAX_KEY_LENGTH, type KeyFunction, type KeySource, type KeySourceItem } from './keys/key-source';
export { PROVIDER_PRESETS, storeSuccessOnly, type ProviderPreset, type ProviderPresetName } from './keys/provider-presets';
export {
  VerifyWebhook,
  type VerifyWebhookOptions,
  type WebhookSecret,
} from './webhooks/verify-webhook.decorator';
export { WebhookSignatureGuard } from './webhooks/webhook-signature.guard';
export { WEBHOOK_VERIFIERS, type SignedDelivery, type WebhookProvider, type WebhookVerifier } from './webhooks/webhook-verifiers';
export { JobOutbox, type OutboxJob } from './outbox/job-outbox';
export { OutboxRelay } from './outbox/outbox-relay';
export type { OutboxOptions, RedisConnectionOptions } from './outbox/outbox.options';
export { OutboxMessage, IDEMPOTENCY_OUTBOX_TABLE } from './outbox/outbox-message.entity';
export { CreateIdempotencyOutbox1763900000002 } from './storage/migrations/1763900000002-create-idempotency-outbox';
export { REPLAYED_HEADER, SKIPPED_HEADER, DEFAULT_REPLAY_HEADERS } from './http/replay';
export {
  IDEMPOTENCY_OUTCOME_CHANNEL,
  IDEMPOTENCY_OUTCOMES,
  idempotencyKeyHash,
  type IdempotencyOutcome,
  type IdempotencyOutcomeMessage,
} from './observability/idempotency-events';
export { onIdempotencyOutcome } from './observability/outcome-channel';
export { DEFAULT_ADDED_SECONDS_BUCKETS, type IdempotencyMetricsOptions } from './observability/idempotency-metrics';
export {
  EventVersionInvalidException,
  IdempotencyException,
  IdempotencyKeyInUseException,
  IdempotencyKeyInvalidException,
  IdempotencyKeyMissingException,
  IdempotencyKeyReusedException,
  IdempotencyKeyUnavailableException,
  IdempotencyStoreUnavailableException,
  PROBLEM_CONTENT_TYPE,
  WebhookSignatureInvalidException,
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
  type VersionOutcome,
} from './storage/idempotency-store';
export { TypeOrmIdempotencyStore, type TypeOrmIdempotencyStoreOptions } from './storage/postgres/typeorm-idempotency.store';
export { RedisIdempotencyStore, type RedisClient, type RedisIdempotencyStoreOptions } from './storage/redis/redis-idempotency.store';
export { DEFAULT_REDIS_PREFIX, REDIS_FIELDS, redisRecordKey } from './storage/redis/redis-record-key';
export { withEncryptionAtRest } from './storage/encryption/encrypted-store';
export type { EncryptionKey, EncryptionOptions } from './storage/encryption/response-encryption';
export { IdempotencyDecryptionError } from './errors/decryption.errors';
export {
  PartitionedTypeOrmIdempotencyStore,
  type PartitionedTypeOrmIdempotencyStoreOptions,
} from './storage/postgres/partitioned-typeorm-idempotency.store';
export { IDEMPOTENCY_PARTITIONED_TABLE, type PartitioningOptions } from './storage/postgres/partitioning.options';
export { CreatePartitionedIdempotencyRecords1763900000010 } from './storage/migrations/1763900000010-create-partitioned-idempotency-records';
export { IdempotencyRecord, IDEMPOTENCY_TABLE } from './storage/idempotency-record.entity';
export { IdempotencyVersion, IDEMPOTENCY_VERSIONS_TABLE } from './storage/idempotency-version.entity';
export { CreateIdempotencyRecords1763900000000 } from './storage/migrations/1763900000000-create-idempotency-records';
export { CreateIdempotencyVersions1763900000001 } from './storage/migrations/1763900000001-create-idempotency-versions';

import { IdempotencyRecord } from './storage/idempotency-record.entity';
import { IdempotencyVersion } from './storage/idempotency-version.entity';
import { CreateIdempotencyRecords1763900000000 } from './storage/migrations/1763900000000-create-idempotency-records';
import { CreateIdempotencyVersions1763900000001 } from './storage/migrations/1763900000001-create-idempotency-versions';
import { CreateIdempotencyOutbox1763900000002 } from './storage/migrations/1763900000002-create-idempotency-outbox';
import { OutboxMessage } from './outbox/outbox-message.entity';

/**
 * Add to the DataSource's `entities` (needed with `synchronize: true`).
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'postgres', url, entities: [Order, ...idempotencyEntities], synchronize: true })
 */
export const idempotencyEntities = [IdempotencyRecord, IdempotencyVersion, OutboxMessage];

/**
 * Add to the DataSource's `migrations`: creates the records, resource versions and outbox tables.
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'postgres', url, migrations: [...idempotencyMigrations], migrationsRun: true })
 */
export const idempotencyMigrations = [CreateIdempotencyRecords1763900000000, CreateIdempotencyVersions1763900000001, CreateIdempotencyOutbox1763900000002];
