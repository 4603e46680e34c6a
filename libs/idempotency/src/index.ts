// The public API, name by name. Store implementers find the rest of the store contract in
// `nestjs-idempotency/testing`, beside the suite that checks a store against it.
export { IdempotencyModule } from './idempotency.module';
export { Idempotent } from './idempotent.decorator';
export { IdempotentTransaction } from './idempotent-transaction.decorator';
export { VerifyWebhook, type VerifyWebhookOptions } from './webhooks/verify-webhook.decorator';
export type { WebhookProvider } from './webhooks/webhook-verifiers';
export { IdempotencyService, type RunOptions } from './idempotency.service';
export { IdempotencyContext } from './idempotency-context';
export { IdempotencyKey } from './idempotency-key.decorator';
export { runInClaimContext, type ClaimIdentity, type ClaimRef } from './claim/claim-context';
export { JobOutbox } from './outbox/job-outbox';
export { IdempotencyApolloPlugin } from './graphql/apollo-plugin';
export { IdempotencyGraphQLError } from './graphql/mutation-errors';
export { OutboxRelay } from './outbox/outbox-relay';

export type { EventOrder, FingerprintFunction, IdempotencyModuleOptions, IdempotentOptions, RedisStoreOptions, ScopeFunction } from './idempotency.options';
export type { Duration } from './duration';
export type { IdempotencyRequest } from './idempotency-request';
export type { KeyFunction, KeySource } from './keys/key-source';
export type { GraphQLMutationCall } from './graphql/mutation-call';
export type { IdempotentMutationOptions, MutationKeyFunction, MutationKeySource } from './graphql/mutation-options';
export type { OutboxOptions } from './outbox/outbox.options';
export type { EncryptionOptions } from './storage/encryption/response-encryption';
export type { MetricsRegistry } from './observability/idempotency-metrics';
export type { RedisClient } from './storage/redis/redis-client';
// What the library needs of TypeORM's objects: TypeORM's own fit, and the types compile where it is not installed.
export type { DataSourceLike, EntityManagerLike, MigrationLike, QueryRunnerLike } from './storage/typeorm-like';

export {
  IdempotencyException,
  IdempotencyKeyInUseException,
  IdempotencyKeyInvalidException,
  IdempotencyKeyMissingException,
  IdempotencyKeyReusedException,
  IdempotencyKeyUnavailableException,
  IdempotencyStoreUnavailableException,
  IdempotencyTransactionAbortedException,
  EventVersionInvalidException,
  WebhookSignatureInvalidException,
} from './errors/idempotency.errors';
export { IdempotencyDecryptionError } from './errors/decryption.errors';
export { IdempotencyConfigurationError } from './errors/configuration.errors';

export { IDEMPOTENCY_OUTCOME_CHANNEL, idempotencyKeyHash, type IdempotencyOutcome, type IdempotencyOutcomeMessage } from './observability/idempotency-events';
export { onIdempotencyOutcome } from './observability/outcome-channel';

export { IDEMPOTENCY_STORE, type IdempotencyStore, type StoredResponse, type TransactionalIdempotencyStore } from './storage/idempotency-store';
export { TypeOrmIdempotencyStore } from './storage/postgres/typeorm-idempotency.store';
export { PartitionedTypeOrmIdempotencyStore } from './storage/postgres/partitioned-typeorm-idempotency.store';
export { MySqlIdempotencyStore } from './storage/mysql/mysql-idempotency.store';
export { RedisIdempotencyStore, type RedisIdempotencyStoreOptions, type WaitForReplicas } from './storage/redis/redis-idempotency.store';
export { withEncryptionAtRest } from './storage/encryption/encrypted-store';

export { idempotencyEntities, idempotencyMigrations } from './storage/schema';
export { mysqlIdempotencyEntities, mysqlIdempotencyMigrations } from './storage/mysql/mysql-schema';
export { CreatePartitionedIdempotencyRecords1763900000010 } from './storage/migrations/1763900000010-create-partitioned-idempotency-records';
