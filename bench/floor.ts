/**
 * The floor under each mode of the library: routes of bench/app.ts that send, by hand and without the library,
 * the statements (or Redis scripts) the library sends for a first request, and nothing else. "Ours / floor" is
 * then what the library costs over the I/O that any idempotent route of its kind must do. Also the realistic
 * handler (three statements in a transaction, with and without the library) and the calibration routes.
 */
import { Body, type CallHandler, Controller, Headers, Injectable, type NestInterceptor, Post, UseInterceptors } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { createHash, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import type { Pool, PoolClient } from 'pg';
import type { Redis } from 'ioredis';
import { DataSource, type EntityManager } from 'typeorm';
import { Idempotent, IdempotentTransaction } from 'nestjs-idempotency';

export interface Order {
  ref: string;
  amount: number;
}

const LEASE_MS = 30_000;
const TTL_MS = 86_400_000;
const msFromNow = (param: string) => `clock_timestamp() + ${param}::float8 * interval '1 millisecond'`;

/** The library's statements, written out: claim (insert or read), completion. */
function statements(schema: string) {
  const records = `"${schema}".idempotency_records`;
  const claim = (settings: string) => `WITH inserted AS (
      INSERT INTO ${records} (scope, key, state, fingerprint, owner, lease_expires_at, expires_at)
      SELECT $1::text, $2::text, 'in_flight', $4::text, $3::uuid, ${msFromNow('$5')}, ${msFromNow('$6')} ${settings}
      ON CONFLICT (scope, key) DO NOTHING
      RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM inserted) AS inserted, existing.*
    FROM (SELECT 1) AS one
    LEFT JOIN LATERAL (
      SELECT state, fingerprint, response_status, response_headers, response_body FROM ${records}
      WHERE scope = $1 AND key = $2 AND NOT EXISTS (SELECT 1 FROM inserted)
    ) AS existing ON true`;
  return {
    claim: claim(''),
    claimInTransaction: claim(`FROM (SELECT set_config('lock_timeout', $7, true), set_config('idle_in_transaction_session_timeout', $8, true)) AS settings`),
    complete: `UPDATE ${records} SET
        state = 'completed', response_status = $4, response_headers = $5::jsonb, response_body = $6,
        completed_at = clock_timestamp(), expires_at = ${msFromNow('$7')}, lease_expires_at = NULL
      WHERE scope = $1 AND key = $2 AND owner = $3 AND state = 'in_flight'`,
    insert: `INSERT INTO "${schema}".orders (ref, amount) VALUES ($1, $2) RETURNING id`,
    touch: `UPDATE "${schema}".calibration SET commits = commits + 1`,
  };
}

const HEADERS = JSON.stringify([['content-type', 'application/json; charset=utf-8']]);
const fingerprint = (order: Order) => createHash('sha256').update(JSON.stringify(order)).digest('hex');

/** Hands the request on and its answer back: the least an interceptor can do. */
@Injectable()
class PassThroughInterceptor implements NestInterceptor {
  intercept(_context: unknown, next: CallHandler) {
    return next.handle();
  }
}

/** The PostgreSQL floors, on the TypeORM DataSource's own node-postgres pool. */
@Controller()
export class PostgresFloorController {
  private readonly sql: ReturnType<typeof statements>;
  private readonly pool: Pool;

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    this.sql = statements(process.env.SCHEMA ?? 'public');
    this.pool = (dataSource.driver as unknown as { master: Pool }).master;
  }

  /** Lease mode by hand: claim, the business INSERT, completion; three autocommit statements. */
  @Post('floor/lease')
  async lease(@Headers('idempotency-key') key: string, @Body() order: Order) {
    const params = ['POST /floor/lease', key, randomUUID(), fingerprint(order), LEASE_MS, TTL_MS];
    const claimed = await this.pool.query<ClaimRow>({ name: 'floor_claim', text: this.sql.claim, values: params });
    if (!claimed.rows[0].inserted) return replayOf(claimed.rows[0]);
    const answer = await insert(this.dataSource.manager, this.sql.insert, order);
    await this.pool.query({
      name: 'floor_complete',
      text: this.sql.complete,
      values: [...params.slice(0, 3), 201, HEADERS, Buffer.from(JSON.stringify(answer)), TTL_MS],
    });
    return answer;
  }

  /**
   * Transaction mode by hand: the same three statements between BEGIN and COMMIT, on one connection; the
   * business INSERT through the transaction's EntityManager, as the handler of the library's route sends it.
   */
  @Post('floor/transaction')
  transaction(@Headers('idempotency-key') key: string, @Body() order: Order) {
    return this.claimedTransaction('POST /floor/transaction', key, order, (manager) => insert(manager, this.sql.insert, order));
  }

  /** The realistic handler's floor: its three statements between the claim and the completion, by hand. */
  @Post('floor/shop')
  shopFloor(@Headers('idempotency-key') key: string, @Body() order: Order) {
    return this.claimedTransaction('POST /floor/shop', key, order, (manager) => buy(manager, order));
  }

  /** BEGIN, the claim, `work`, the completion, COMMIT: each statement a round trip of its own. */
  private async claimedTransaction(route: string, key: string, order: Order, work: (manager: EntityManager) => Promise<unknown>) {
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    const client = (runner as unknown as { databaseConnection: PoolClient }).databaseConnection;
    try {
      await runner.startTransaction();
      const params = [route, key, randomUUID(), fingerprint(order), LEASE_MS, TTL_MS];
      const claimed = await client.query<ClaimRow>({ name: 'floor_claim_tx', text: this.sql.claimInTransaction, values: [...params, '10000ms', '60000ms'] });
      if (!claimed.rows[0].inserted) {
        await runner.commitTransaction();
        return replayOf(claimed.rows[0]);
      }
      const answer = await work(runner.manager);
      await client.query({
        name: 'floor_complete',
        text: this.sql.complete,
        values: [...params.slice(0, 3), 201, HEADERS, Buffer.from(JSON.stringify(answer)), TTL_MS],
      });
      await runner.commitTransaction();
      return answer;
    } catch (error) {
      if (runner.isTransactionActive) await runner.rollbackTransaction();
      throw error;
    } finally {
      await runner.release();
    }
  }

  /** The realistic handler without the library: lock the product, take the stock, insert the order. */
  @Post('shop')
  shop(@Body() order: Order) {
    return this.dataSource.transaction((manager) => buy(manager, order));
  }

  /** The same handler in transaction mode: the claim and its answer join its transaction. */
  @Post('shop/idempotent')
  @Idempotent({ transaction: true })
  shopIdempotent(@Body() order: Order, @IdempotentTransaction() manager: EntityManager) {
    return buy(manager, order);
  }

  /** Calibration: the app's own cost (no I/O), one round trip, one round trip that commits (flushes WAL). */
  @Post('calibrate/none')
  none() {
    return { ok: true };
  }

  /**
   * The same behind an interceptor that only passes through: what Nest's chain costs any interceptor, ours too (a
   * replay skips the chain's inner half, which calls the handler).
   */
  @Post('calibrate/intercepted')
  @UseInterceptors(PassThroughInterceptor)
  intercepted() {
    return { ok: true };
  }

  @Post('calibrate/select')
  async select() {
    await this.pool.query({ name: 'calibrate_select', text: 'SELECT 1' });
    return { ok: true };
  }

  /**
   * A commit that flushes, with nothing else to do: one row of a one-row table updated in autocommit. (An empty
   * transaction, even one with a transaction id, writes no WAL before its commit record, and PostgreSQL then
   * commits it without waiting for the disk.)
   */
  @Post('calibrate/commit')
  async commit() {
    await this.pool.query({ name: 'calibrate_commit', text: this.sql.touch });
    return { ok: true };
  }
}

const PRODUCTS = Number(process.env.PRODUCTS ?? 1000);

/** One of PRODUCTS products, from the order's ref: concurrent orders rarely wait on each other's lock. */
function productOf(order: Order): number {
  let hash = 0;
  for (let i = 0; i < order.ref.length; i++) hash = (hash * 31 + order.ref.charCodeAt(i)) | 0;
  return (Math.abs(hash) % PRODUCTS) + 1;
}

async function buy(manager: EntityManager, order: Order) {
  const schema = process.env.SCHEMA ?? 'public';
  const product = productOf(order);
  await manager.query(`SELECT stock FROM "${schema}".products WHERE id = $1 FOR UPDATE`, [product]);
  await manager.query(`UPDATE "${schema}".products SET stock = stock - 1 WHERE id = $1`, [product]);
  const [row] = await manager.query<Array<{ id: number }>>(`INSERT INTO "${schema}".orders (ref, amount) VALUES ($1, $2) RETURNING id`, [
    order.ref,
    order.amount,
  ]);
  return { id: row.id, ref: order.ref, amount: order.amount, product };
}

/** The business INSERT, sent as the library's routes send it (bench/app.ts): through TypeORM. */
async function insert(manager: EntityManager, sql: string, order: Order) {
  const [row] = await manager.query<Array<{ id: number }>>(sql, [order.ref, order.amount]);
  return { id: row.id, ref: order.ref, amount: order.amount };
}

/**
 * The business write of the Redis app, on TypeORM's node-postgres pool directly, as the peer's app sends it: its
 * records are not in the database, so nothing ties it to TypeORM, and store against store compares the stores.
 */
export async function insertOnPool(dataSource: DataSource, order: Order) {
  const pool = (dataSource.driver as unknown as { master: Pool }).master;
  const { rows } = await pool.query<{ id: number }>(`INSERT INTO "${process.env.SCHEMA ?? 'public'}".orders (ref, amount) VALUES ($1, $2) RETURNING id`, [
    order.ref,
    order.amount,
  ]);
  return { id: rows[0].id, ref: order.ref, amount: order.amount };
}

/** What the claim reads: whether it inserted, else the record's answer. */
interface ClaimRow {
  inserted: boolean;
  response_body: Buffer;
}

function replayOf(row: ClaimRow): unknown {
  return JSON.parse(row.response_body.toString()) as unknown;
}

/** The Redis store's own Lua scripts (from the built library), defined on a client of the floor's own. */
function redisScripts(client: Redis) {
  const library = join(require.resolve('nestjs-idempotency'), '..');
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- an internal file of the built package, as the bench reads it
  const { scriptCommand } = require(join(library, 'storage/redis/redis-scripts')) as { scriptCommand: (name: string) => { lua: string } };
  client.defineCommand('floorClaim', { numberOfKeys: 1, lua: scriptCommand('claim').lua });
  client.defineCommand('floorComplete', { numberOfKeys: 1, lua: scriptCommand('complete').lua });
  return client as Redis & {
    floorClaimBuffer(key: string, ...args: Array<string | number>): Promise<Array<Buffer | number>>;
    floorComplete(key: string, ...args: Array<string | number | Buffer>): Promise<number>;
  };
}

/** The Redis floor: the claim script, the business INSERT, the completion script. */
@Controller()
export class RedisFloorController {
  private readonly redis: ReturnType<typeof redisScripts>;
  private readonly prefix = `${process.env.KEY_PREFIX}-floor:`;

  constructor(@InjectDataSource() private readonly dataSource: DataSource) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- ioredis, as the library loads it
    const IORedis = require('ioredis') as typeof import('ioredis').default;
    this.redis = redisScripts(new IORedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'));
  }

  @Post('floor/redis')
  async lease(@Headers('idempotency-key') key: string, @Body() order: Order) {
    const record = `${this.prefix}${key}`;
    const owner = randomUUID();
    const reply = await this.redis.floorClaimBuffer(record, owner, fingerprint(order), '1', LEASE_MS, TTL_MS);
    if (String(reply[0]) !== 'claimed') return JSON.parse(String(reply[3])) as unknown;
    const answer = await insertOnPool(this.dataSource, order);
    await this.redis.floorComplete(record, owner, 201, HEADERS, Buffer.from(JSON.stringify(answer)), TTL_MS);
    return answer;
  }
}
