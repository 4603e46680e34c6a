import { createHash } from 'node:crypto';
import type { DataSourceLike, QueryRunnerLike } from '../typeorm-like';
import type { BatchClient, NodePostgresParts, WireConnection } from './pipelined-statements';

/**
 * The one place that reaches under TypeORM to node-postgres: its pool (the driver's `master`: claims must
 * never go to a read replica) and a QueryRunner's client, through which named prepared statements are sent.
 */

/** A result as node-postgres gives it. */
export interface NodePostgresResult {
  rows: unknown[];
  rowCount: number | null;
}

/** node-postgres' pool, or one of its clients: what a named statement is sent through. */
export interface NodePostgres {
  query(config: { name: string; text: string; values: unknown[] }): Promise<NodePostgresResult>;
}

/** A client taken from node-postgres' pool by hand. */
export interface PooledClient extends NodePostgres {
  release(error?: Error): void;
  once(event: 'error', listener: (error: Error) => void): unknown;
  removeListener(event: 'error', listener: (error: Error) => void): unknown;
}

interface NodePostgresPool extends NodePostgres {
  connect(): Promise<PooledClient>;
}

/** Whether TypeORM runs on node-postgres (another driver, PGlite's, is given in the options and takes only text). */
export function runsOnNodePostgres(dataSource: DataSourceLike): boolean {
  return !(dataSource.options as { driver?: unknown }).driver;
}

/** The primary's pool of TypeORM's postgres driver. */
export function primaryPool(dataSource: DataSourceLike): NodePostgresPool {
  return (dataSource.driver as { master: NodePostgresPool }).master;
}

/**
 * The parts of node-postgres a batch of statements is built from, taken from the copy TypeORM loaded (the one its
 * clients come from); none from a pg too old to export them.
 */
export function nodePostgresParts(dataSource: DataSourceLike): NodePostgresParts | undefined {
  const pg = (dataSource.driver as { postgres?: { Result?: unknown; utils?: { prepareValue?: unknown } } }).postgres;
  if (typeof pg?.Result !== 'function' || typeof pg.utils?.prepareValue !== 'function') return undefined;
  return { Result: pg.Result as NodePostgresParts['Result'], prepareValue: pg.utils.prepareValue as NodePostgresParts['prepareValue'] };
}

/**
 * The client under a QueryRunner if it takes a batch: node-postgres' JavaScript client, which writes through a
 * Connection (pg-native has none), outside its own pipeline mode (which refuses a custom query object).
 */
export async function batchClient(runner: QueryRunnerLike): Promise<BatchClient | undefined> {
  const client = (await runner.connect()) as { connection?: Partial<WireConnection>; pipeline?: boolean; query?: unknown };
  const connection = client.connection;
  const takesBatch = typeof client.query === 'function' && typeof connection?.parse === 'function' && typeof connection.parsedStatements === 'object';
  return takesBatch && client.pipeline !== true ? (client as BatchClient) : undefined;
}

/** The node-postgres client under a QueryRunner, connecting it if it is not yet. */
export async function runnerClient(runner: QueryRunnerLike): Promise<NodePostgres> {
  return (await runner.connect()) as NodePostgres;
}

/**
 * Sends a named statement on a client taken from the pool by hand, after `beforeSend` (which may throw: the
 * client goes back unused). As pool.query() does, the client listens for 'error' meanwhile: out of the pool it
 * has no listener of the pool's, and the server closing its connection would be an unhandled 'error' event,
 * which ends the process. A client that failed is not handed out again.
 */
export async function queryOnPooledClient(pool: NodePostgresPool, sql: string, values: unknown[], beforeSend: () => void): Promise<NodePostgresResult> {
  const client = await pool.connect();
  let failed: Error | undefined;
  const onError = (error: Error) => {
    failed = error;
  };
  client.once('error', onError);
  let result: NodePostgresResult;
  try {
    beforeSend();
    result = await client.query({ name: statementName(sql), text: sql, values });
  } catch (error) {
    client.removeListener('error', onError);
    client.release(error as Error);
    throw error;
  }
  client.removeListener('error', onError);
  client.release(failed);
  return result;
}

const statementNames = new Map<string, string>();

/** A name per statement text: node-postgres refuses one name for two texts. */
export function statementName(sql: string): string {
  let name = statementNames.get(sql);
  if (!name) {
    name = `nestjs_idempotency_${createHash('sha1').update(sql).digest('hex').slice(0, 24)}`;
    statementNames.set(sql, name);
  }
  return name;
}
