import type { DataSource } from 'typeorm';

/** The table's name as SQL, in the DataSource's `schema` when it sets one (as TypeORM places entities). */
export function qualifiedTableName(dataSource: DataSource | null, table: string): string {
  const schema = (dataSource?.options as { schema?: string } | undefined)?.schema;
  const quote = (identifier: string) => `"${identifier.replaceAll('"', '""')}"`;
  return schema ? `${quote(schema)}.${quote(table)}` : quote(table);
}
