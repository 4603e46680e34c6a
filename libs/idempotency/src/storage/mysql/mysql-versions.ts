import { createHash } from 'node:crypto';
import { EventVersionInvalidException } from '../../errors/idempotency.errors';
import type { VersionOutcome } from '../idempotency-store';
import { CLOCK, MS_FROM_NOW, STATEMENT_START } from './mysql-clock';
import type { QueryRunnerLike } from '../typeorm-like';
import type { MySqlSession } from './mysql-session';

export const MYSQL_VERSIONS_TABLE = '`idempotency_versions`';

/** DECIMAL(65, 30): what the column holds before the point. */
const MAX_INTEGER_DIGITS = 35;

/**
 * Records `version` as the newest of `resource` unless a newer one is recorded, in the claim's transaction.
 * Insert-or-update locks the resource's row to the transaction's end (a concurrent one waits, bounded by the
 * session's lock wait); the assignments run left to right, so `expires_at` sees whether `version` moved.
 * Parameters: id, scope, resource, version, TTL ms.
 */
const ADVANCE = `INSERT INTO ${MYSQL_VERSIONS_TABLE} (id, scope, resource, version, expires_at) VALUES (?, ?, ?, ?, ${MS_FROM_NOW})
  ON DUPLICATE KEY UPDATE
    version = IF(version <= VALUES(version) OR expires_at <= ${CLOCK}, VALUES(version), version),
    expires_at = IF(version = VALUES(version), GREATEST(expires_at, VALUES(expires_at)), expires_at)`;

/** Whether the row now holds this version: the same version again counts as applied, as on PostgreSQL. */
const APPLIED = `SELECT version = CAST(? AS DECIMAL(65, 30)) AS applied FROM ${MYSQL_VERSIONS_TABLE} WHERE id = ?`;

export async function advanceVersion(
  session: MySqlSession,
  runner: QueryRunnerLike,
  scope: string,
  resource: string,
  version: string,
  ttlMs: number,
): Promise<VersionOutcome> {
  if (version.replace(/^-/, '').split('.')[0].length > MAX_INTEGER_DIGITS) {
    throw new EventVersionInvalidException(`The event version must have at most ${MAX_INTEGER_DIGITS} digits before the point on MySQL and MariaDB.`);
  }
  const id = createHash('sha256')
    .update(JSON.stringify([scope, resource]))
    .digest();
  await session.send(ADVANCE, [id, scope, resource, version, ttlMs], { runner });
  const { rows } = await session.send<{ applied: number | string }>(APPLIED, [version, id], { runner });
  return Number(rows[0]?.applied) === 1 ? 'applied' : 'stale';
}

/** Expired resource versions, on the statement's start (see the purge). */
export const PURGEABLE_VERSIONS = `expires_at <= ${STATEMENT_START}`;
