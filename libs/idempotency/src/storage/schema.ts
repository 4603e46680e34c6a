import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import type { OutboxMessage } from '../outbox/outbox-message.entity';
import { requireOptionalPeer } from '../optional-peer';
import { lazyList } from './lazy-list';
import type { IdempotencyRecord } from './idempotency-record.entity';
import type { IdempotencyVersion } from './idempotency-version.entity';
import { CreateIdempotencyRecords1763900000000 } from './migrations/1763900000000-create-idempotency-records';
import { CreateIdempotencyVersions1763900000001 } from './migrations/1763900000001-create-idempotency-versions';
import { CreateIdempotencyOutbox1763900000002 } from './migrations/1763900000002-create-idempotency-outbox';

/** The library's entity classes. */
export type IdempotencyEntity = typeof IdempotencyRecord | typeof IdempotencyVersion | typeof OutboxMessage;

/**
 * Add to the DataSource's `entities` (needed with `synchronize: true`).
 *
 * The entities are declared with TypeORM's decorators, so they are loaded on the first read of this list,
 * not when the library is imported: an app without TypeORM (records in Redis) never loads them.
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'postgres', url, entities: [Order, ...idempotencyEntities], synchronize: true })
 */
export const idempotencyEntities: IdempotencyEntity[] = lazyList(() => {
  const typeorm = requireOptionalPeer('typeorm');
  if (typeorm.missing) {
    throw new IdempotencyConfigurationError(`idempotencyEntities needs the package ${typeorm.missing}: npm install typeorm @nestjs/typeorm pg`);
  }
  /* eslint-disable @typescript-eslint/no-require-imports -- loaded on first read, once TypeORM is known to be there */
  return [
    (require('./idempotency-record.entity') as typeof import('./idempotency-record.entity')).IdempotencyRecord,
    (require('./idempotency-version.entity') as typeof import('./idempotency-version.entity')).IdempotencyVersion,
    (require('../outbox/outbox-message.entity') as typeof import('../outbox/outbox-message.entity')).OutboxMessage,
  ];
  /* eslint-enable @typescript-eslint/no-require-imports */
});

/**
 * Add to the DataSource's `migrations`: creates the records, resource versions and outbox tables. Run them
 * as a deploy step (`npx typeorm migration:run -d data-source.js`): instances that all migrate at start race.
 * The migrations send SQL through the QueryRunner TypeORM gives them: loading them needs no TypeORM.
 *
 * @example
 * export default new DataSource({ type: 'postgres', url, migrations: [...idempotencyMigrations] });
 */
export const idempotencyMigrations = [CreateIdempotencyRecords1763900000000, CreateIdempotencyVersions1763900000001, CreateIdempotencyOutbox1763900000002];
