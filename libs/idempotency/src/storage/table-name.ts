import type { DataSourceLike } from './typeorm-like';

// The library's tables, by name: plain constants, so that the stores need neither TypeORM nor its entities.
export const IDEMPOTENCY_TABLE = 'idempotency_records';
export const IDEMPOTENCY_VERSIONS_TABLE = 'idempotency_versions';
export const IDEMPOTENCY_OUTBOX_TABLE = 'idempotency_outbox';

/** The table's name as SQL, in the DataSource's `schema` when it sets one (as TypeORM places entities). */
export function qualifiedTableName(dataSource: DataSourceLike | null, table: string): string {
  const schema = (dataSource?.options as { schema?: string } | undefined)?.schema;
  const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;
  return schema ? `${quote(schema)}.${quote(table)}` : quote(table);
}
