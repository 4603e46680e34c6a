import { OutboxMessage } from '../outbox/outbox-message.entity';
import { IdempotencyRecord } from './idempotency-record.entity';
import { IdempotencyVersion } from './idempotency-version.entity';
import { CreateIdempotencyRecords1763900000000 } from './migrations/1763900000000-create-idempotency-records';
import { CreateIdempotencyVersions1763900000001 } from './migrations/1763900000001-create-idempotency-versions';
import { CreateIdempotencyOutbox1763900000002 } from './migrations/1763900000002-create-idempotency-outbox';

/**
 * Add to the DataSource's `entities` (needed with `synchronize: true`).
 *
 * @example
 * TypeOrmModule.forRoot({ type: 'postgres', url, entities: [Order, ...idempotencyEntities], synchronize: true })
 */
export const idempotencyEntities = [IdempotencyRecord, IdempotencyVersion, OutboxMessage];

/**
 * Add to the DataSource's `migrations`: creates the records, resource versions and outbox tables. Run them
 * as a deploy step (`npx typeorm migration:run -d data-source.js`): instances that all migrate at start race.
 *
 * @example
 * export default new DataSource({ type: 'postgres', url, migrations: [...idempotencyMigrations] });
 */
export const idempotencyMigrations = [CreateIdempotencyRecords1763900000000, CreateIdempotencyVersions1763900000001, CreateIdempotencyOutbox1763900000002];
