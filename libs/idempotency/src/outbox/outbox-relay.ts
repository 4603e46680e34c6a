import { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DataSource, QueryRunner } from 'typeorm';
import { qualifiedTableName } from '../storage/table-name';
import { loadIoRedis } from '../storage/redis/ioredis';
import { loadOptionalPeer } from '../optional-peer';
import { IDEMPOTENCY_OUTBOX_TABLE } from './outbox-message.entity';
import { type OutboxOptions, resolveOutboxOptions, type ResolvedOutboxOptions } from './outbox.options';

/** What the relay uses of a BullMQ `Queue`. */
interface BullQueue {
  addBulk(jobs: Array<{ name: string; data: unknown; opts: Record<string, unknown> }>): Promise<unknown>;
  close(): Promise<void>;
  disconnect(): Promise<void>;
  on(event: 'error', listener: (error: Error) => void): unknown;
}

/** A BullMQ `Job`, for the checks BullMQ makes before it adds one (a method it keeps protected). */
interface BullJob {
  asJSON(): unknown;
  validateOptions(json: unknown): void;
}

interface BullMqModule {
  Queue: new (name: string, options: Record<string, unknown>) => BullQueue;
  Job: new (queue: BullQueue, name: string, data: unknown, options: Record<string, unknown>, id?: string) => BullJob;
}

/** What the relay uses of an ioredis client. */
interface RedisClient {
  readonly status: string;
  on(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'ready', listener: () => void): unknown;
  off(event: 'ready', listener: () => void): unknown;
  disconnect(): void;
}

interface OutboxRow {
  id: string;
  queue: string;
  name: string;
  data: unknown;
  options: Record<string, unknown>;
  job_id: string;
}

/** The longest pause between two attempts while Redis (or PostgreSQL) is unreachable. */
const LONGEST_BACKOFF_MS = 10_000;
/** How often sent rows past their retention are deleted. */
const CLEANUP_EVERY_MS = 60_000;

/**
 * Moves committed outbox rows to BullMQ. Each batch is one READ COMMITTED transaction: lock up to
 * `batchSize` unsent rows with `FOR UPDATE SKIP LOCKED` (so relays on several instances take disjoint
 * rows and never wait on each other), `addBulk` them to their queues with the row's job id, mark them
 * sent, commit. A relay that dies between the send and the commit leaves the rows unsent; they are sent
 * again with the same job ids, which BullMQ drops while those jobs exist, and which an idempotent consumer
 * (`IdempotencyService.runJob()`) turns into no effect after that.
 *
 * It wakes when a transaction of this process that enqueued commits, and otherwise polls every
 * `pollInterval`: no LISTEN connection outside the pool, and it works behind PgBouncer in transaction
 * pooling mode. While Redis is down it backs off (up to 10 s between attempts) and keeps the rows.
 *
 * @example
 * // A relay of its own, outside a Nest app:
 * const relay = new OutboxRelay(dataSource, { connection: 'redis://127.0.0.1:6379' });
 * relay.start();
 */
export class OutboxRelay {
  private readonly logger = new Logger('Idempotency');
  private readonly table: string;
  private readonly queues = new Map<string, BullQueue>();
  private redis?: Promise<RedisClient>;
  private running = false;
  private stopping = new AbortController();
  private loop?: Promise<void>;
  private wakeUp?: () => void;
  private woken = false;
  private lastCleanup = 0;

  private readonly options: ResolvedOutboxOptions;

  /** Started by `IdempotencyModule` when `outbox` is configured; construct one yourself to relay from a script. */
  constructor(
    private readonly dataSource: DataSource,
    options: OutboxOptions,
  ) {
    this.options = resolveOutboxOptions(options);
    this.table = qualifiedTableName(dataSource, IDEMPOTENCY_OUTBOX_TABLE);
  }

  onApplicationBootstrap(): void {
    this.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = new AbortController();
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.stopping.abort();
    this.wake();
    await this.loop;
    // The queues share the relay's connection, which is cut last: a graceful close may never end while Redis is down.
    await Promise.all([...this.queues.values()].map((queue) => queue.close().catch(() => undefined)));
    this.queues.clear();
    const redis = this.redis;
    this.redis = undefined;
    if (redis) (await redis).disconnect();
  }

  /** Looks for rows at once, instead of at the next poll. */
  wake(): void {
    this.woken = true;
    this.wakeUp?.();
  }

  /**
   * Sends one batch of unsent rows (and, with `redeliverAfter`, rows sent that long ago and still not
   * processed); returns how many it sent. Throws when Redis or PostgreSQL fails: the rows stay unsent.
   */
  async relayOnce(): Promise<number> {
    // Redis first, so that no transaction (and no row lock) waits on a connection that is not there.
    await this.redisReady();
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction('READ COMMITTED');
      const rows = await this.lockBatch(runner);
      if (rows.length > 0) {
        const refused = await this.send(rows);
        const sent = rows.filter((row) => !refused.has(row.id));
        await this.afterSend(sent.map((row) => row.job_id));
        await runner.query(`UPDATE ${this.table} SET sent_at = clock_timestamp(), sends = sends + 1 WHERE id = ANY($1::bigint[])`, [sent.map((row) => row.id)]);
        for (const [id, error] of refused) {
          // A job BullMQ will never take (a bad option): parked with its error, so that it cannot block the rest.
          await runner.query(`UPDATE ${this.table} SET failed_at = clock_timestamp(), last_error = $2 WHERE id = $1`, [id, error]);
          this.logger.error(`Outbox row ${id} was refused by BullMQ and set aside (failed_at): ${error}`);
        }
      }
      await runner.commitTransaction();
      return rows.length;
    } catch (error) {
      // The failure that matters is the one rethrown; a rollback on a broken connection adds nothing to it.
      if (runner.isTransactionActive) await runner.rollbackTransaction().catch(() => undefined);
      throw error;
    } finally {
      await runner.release();
    }
  }

  /** Deletes rows sent more than `retention` ago, processed or not, in batches. */
  async cleanUp(): Promise<number> {
    const runner = this.dataSource.createQueryRunner();
    let deleted = 0;
    try {
      for (;;) {
        const result = await runner.query(
          `DELETE FROM ${this.table} WHERE id IN (
             SELECT id FROM ${this.table}
             WHERE sent_at < now() - $1::float8 * interval '1 millisecond'
             ORDER BY sent_at LIMIT 1000 FOR UPDATE SKIP LOCKED)`,
          [this.options.retentionMs],
          true,
        );
        deleted += result.affected ?? 0;
        if ((result.affected ?? 0) < 1000) return deleted;
      }
    } finally {
      await runner.release();
    }
  }

  /**
   * Called after a batch was handed to BullMQ and before it is marked sent. A subclass can observe
   * it; a crash here is the case that sends a row twice.
   */
  protected async afterSend(_jobIds: string[]): Promise<void> {}

  private async lockBatch(runner: QueryRunner): Promise<OutboxRow[]> {
    const columns = 'id, queue, name, data, options, job_id';
    // now(), not clock_timestamp(): a stable value lets PostgreSQL bound the index scans (the transaction has just begun).
    const unsent = (await runner.query(
      `SELECT ${columns} FROM ${this.table} WHERE sent_at IS NULL AND failed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [this.options.batchSize],
    )) as OutboxRow[];
    const room = this.options.batchSize - unsent.length;
    if (room === 0 || this.options.redeliverAfterMs === null) return unsent;
    const lost = (await runner.query(
      `SELECT ${columns} FROM ${this.table}
       WHERE processed_at IS NULL AND sent_at IS NOT NULL AND sent_at < now() - $2::float8 * interval '1 millisecond' AND sends < $3
       ORDER BY sent_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [room, this.options.redeliverAfterMs, this.options.maxSends],
    )) as OutboxRow[];
    return [...unsent, ...lost];
  }

  /**
   * Hands the rows to BullMQ, one `addBulk` per queue. BullMQ checks every job before adding any, so one
   * job it refuses for what it is (a bad option) would fail its whole batch, every time: such rows are
   * found with BullMQ's own checks, before anything is sent, and returned to be set aside. Any failure of
   * the send itself throws: the batch is retried whole.
   */
  private async send(rows: OutboxRow[]): Promise<Map<string, string>> {
    const client = await this.connection();
    if (client.status !== 'ready') throw new Error(`Redis is not connected (${client.status}).`);
    const { Job } = await loadOptionalPeer<BullMqModule>('bullmq', 'The outbox relay');
    const refused = new Map<string, string>();
    const byQueue = new Map<BullQueue, OutboxRow[]>();
    for (const row of rows) {
      const queue = await this.queue(row.queue);
      const job = toJob(row);
      try {
        const candidate = new Job(queue, job.name, job.data, job.opts, row.job_id);
        candidate.validateOptions(candidate.asJSON());
        byQueue.set(queue, [...(byQueue.get(queue) ?? []), row]);
      } catch (error) {
        refused.set(row.id, (error as Error).message);
      }
    }
    try {
      await this.withinTimeout(Promise.all([...byQueue].map(([queue, queued]) => queue.addBulk(queued.map(toJob)))));
    } catch (error) {
      this.forgetQueues();
      throw error;
    }
    return refused;
  }

  /**
   * A BullMQ queue whose set-up failed (Redis went away during its version check) fails every later call,
   * for good: after a failed send, the queues are made again (they share the relay's connection, which
   * stays open).
   */
  private forgetQueues(): void {
    for (const queue of this.queues.values()) queue.close().catch(() => undefined);
    this.queues.clear();
  }

  private async withinTimeout(work: Promise<unknown>): Promise<void> {
    const timeout = new AbortController();
    try {
      await Promise.race([
        work,
        sleep(this.options.sendTimeoutMs, undefined, { signal: timeout.signal }).then(() => {
          throw new Error(`Redis did not answer within ${this.options.sendTimeoutMs} ms.`);
        }),
      ]);
    } finally {
      timeout.abort();
      // A send that lost the race may still fail later; it is reported by the race, not again.
      work.catch(() => undefined);
    }
  }

  private async queue(name: string): Promise<BullQueue> {
    let queue = this.queues.get(name);
    if (!queue) {
      const { Queue } = await loadOptionalPeer<BullMqModule>('bullmq', 'The outbox relay');
      queue = new Queue(name, { connection: await this.connection(), ...(this.options.prefix ? { prefix: this.options.prefix } : {}) });
      // Connection errors come back from addBulk too; the relay logs them there, once per outage.
      queue.on('error', () => undefined);
      this.queues.set(name, queue);
    }
    return queue;
  }

  private async redisReady(): Promise<void> {
    const client = await this.connection();
    if (client.status === 'ready') return;
    let onReady!: () => void;
    const ready = new Promise<void>((resolve) => client.once('ready', (onReady = resolve)));
    try {
      await this.withinTimeout(ready);
    } finally {
      client.off('ready', onReady);
    }
  }

  /** One connection for all the relay's queues. */
  private connection(): Promise<RedisClient> {
    this.redis ??= loadIoRedis('The outbox relay').then((Redis) => {
      const { url, ...options } = this.options.connection;
      // Fail fast while Redis is down, and never replay a command after a reconnect: the rows wait in the table,
      // and a stale add replayed late could re-create a job that already ran and was removed.
      const settings = { ...options, enableOfflineQueue: false, maxRetriesPerRequest: 0 };
      const client = url ? new Redis(url, settings) : new Redis(settings);
      client.on('error', () => undefined);
      return client;
    });
    return this.redis;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (this.running) {
      try {
        this.woken = false;
        const sent = await this.relayOnce();
        if (failures > 0) this.logger.log(`Outbox relay recovered after ${failures} failed attempts.`);
        failures = 0;
        if (Date.now() - this.lastCleanup > CLEANUP_EVERY_MS) {
          this.lastCleanup = Date.now();
          await this.cleanUp();
        }
        if (sent < this.options.batchSize && !this.woken) await this.idle(this.options.pollIntervalMs);
      } catch (error) {
        failures += 1;
        if (failures === 1) this.logger.error(`Outbox relay failed; rows stay unsent and are retried: ${(error as Error).message}`, (error as Error).stack);
        // Backing off ignores wake-ups: they would only hammer the service that is down.
        await sleep(Math.min(this.options.pollIntervalMs * 2 ** failures, LONGEST_BACKOFF_MS), undefined, { signal: this.stopping.signal }).catch(
          (error: Error) => {
            if (error.name !== 'AbortError') throw error;
          },
        );
      }
    }
  }

  private async idle(ms: number): Promise<void> {
    const controller = new AbortController();
    this.wakeUp = () => controller.abort();
    try {
      await sleep(ms, undefined, { signal: controller.signal }).catch((error: Error) => {
        if (error.name !== 'AbortError') throw error;
      });
    } finally {
      this.wakeUp = undefined;
    }
  }
}

function toJob(row: OutboxRow): { name: string; data: unknown; opts: Record<string, unknown> } {
  return { name: row.name, data: row.data, opts: { ...row.options, jobId: row.job_id } };
}
