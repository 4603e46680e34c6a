import { IDEMPOTENCY_TABLE } from '../table-name';
import { RecordsTableMigration } from '../postgres/records-ddl';

/** Creates the idempotency records table (the same schema as the `IdempotencyRecord` entity). */
export class CreateIdempotencyRecords1763900000000 extends RecordsTableMigration {
  name = 'CreateIdempotencyRecords1763900000000';
  protected readonly table = IDEMPOTENCY_TABLE;
  protected readonly partitioned = false;
}
