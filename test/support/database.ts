import { randomBytes } from 'node:crypto';
import { Client } from 'pg';

/** The PostgreSQL the suites run against: the local server unless DATABASE_URL says otherwise. */
export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** A fresh schema, so that test files never share (or drop) each other's data. */
export async function createSchema(label: string): Promise<string> {
  const schema = `t_${label.replace(/\W/g, '_')}_${randomBytes(4).toString('hex')}`;
  await sql(`CREATE SCHEMA "${schema}"`);
  return schema;
}

export async function dropSchema(schema: string): Promise<void> {
  await sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

/** Runs one statement on a connection of its own (outside any app's pool). */
export async function sql<T = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
  const client = new Client({ connectionString: DATABASE_URL });
  await client.connect();
  try {
    return (await client.query(text, params)).rows as T[];
  } finally {
    await client.end();
  }
}
