import { randomBytes } from 'node:crypto';
import { createConnection } from 'mysql2/promise';

/** The MariaDB (or MySQL) the suites run against: the local server unless MARIADB_URL says otherwise. */
export const MARIADB_URL = process.env.MARIADB_URL ?? 'mysql://root@127.0.0.1:3306';

/** The URL of one database on that server. */
export const mariadbUrl = (database: string) => `${MARIADB_URL.replace(/\/+$/, '')}/${database}`;

/** A fresh database, so that test files never share (or drop) each other's data. */
export async function createDatabase(label: string): Promise<string> {
  const database = `t_${label.replace(/\W/g, '_')}_${randomBytes(4).toString('hex')}`;
  await mysql(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
  return database;
}

export async function dropDatabase(database: string): Promise<void> {
  await mysql(`DROP DATABASE IF EXISTS \`${database}\``);
}

/** Runs one statement on a connection of its own (outside any app's pool), in `database` if given. */
export async function mysql<T = Record<string, unknown>>(text: string, params: unknown[] = [], database?: string): Promise<T[]> {
  const connection = await createConnection(database ? mariadbUrl(database) : MARIADB_URL);
  try {
    const [rows] = await connection.query(text, params);
    return rows as T[];
  } finally {
    await connection.end();
  }
}
