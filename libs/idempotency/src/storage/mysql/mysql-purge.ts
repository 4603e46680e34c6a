import type { MySqlSession } from './mysql-session';

/**
 * Deletes up to `batchSize` rows of `table` that match `condition`, oldest expiry first. Where the server has
 * `SKIP LOCKED` (MariaDB 10.6, MySQL 8.0), the rows are locked first, skipping any a claim holds, and deleted
 * by primary key: the purge never waits on (or blocks) a claim. Older servers delete in one statement, which
 * waits for a row that a claim holds.
 */
export async function purgeBatch(session: MySqlSession, table: string, condition: string, batchSize: number): Promise<number> {
  if (!(await session.server()).skipLocked) {
    return (await session.send(`DELETE FROM ${table} WHERE ${condition} ORDER BY expires_at LIMIT ?`, [batchSize])).affected;
  }
  return session.transaction(async (runner) => {
    const { rows } = await session.send<{ id: Buffer }>(
      `SELECT id FROM ${table} WHERE ${condition} ORDER BY expires_at LIMIT ? FOR UPDATE SKIP LOCKED`,
      [batchSize],
      { runner },
    );
    if (rows.length === 0) return 0;
    return (await session.send(`DELETE FROM ${table} WHERE id IN (?)`, [rows.map((row) => row.id)], { runner })).affected;
  });
}
