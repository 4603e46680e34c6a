import { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import type { DataSourceLike } from '../storage/typeorm-like';
import { BullMqSender } from './bullmq-sender';
import { OutboxTable } from './outbox-table';
import { type OutboxOptions, resolveOutboxOptions, type ResolvedOutboxOptions } from './outbox.options';

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
  private readonly table: OutboxTable;
  private readonly bullmq: BullMqSender;
  private running = false;
  private stopping = new AbortController();
  private loop?: Promise<void>;
  private wakeUp?: () => void;
  private woken = false;
  private lastCleanup = 0;

  private readonly options: ResolvedOutboxOptions;

  /** Started by `IdempotencyModule` when `outbox` is configured; construct one yourself to relay from a script. */
  constructor(
    private readonly dataSource: DataSourceLike,
    options: OutboxOptions,
  ) {
    this.options = resolveOutboxOptions(options);
    this.table = new OutboxTable(dataSource, this.options);
    this.bullmq = new BullMqSender(this.options);
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
    await this.bullmq.close();
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
    await this.bullmq.ready();
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction('READ COMMITTED');
      const rows = await this.table.lockBatch(runner);
      if (rows.length > 0) {
        const refused = await this.bullmq.send(rows);
        const sent = rows.filter((row) => !refused.has(row.id));
        await this.afterSend(sent.map((row) => row.job_id));
        await this.table.markSent(runner, sent);
        for (const [id, error] of refused) {
          // A job BullMQ will never take (a bad option): parked with its error, so that it cannot block the rest.
          await this.table.setAside(runner, id, error);
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
  cleanUp(): Promise<number> {
    return this.table.cleanUp();
  }

  /**
   * Called after a batch was handed to BullMQ and before it is marked sent. A subclass can observe
   * it; a crash here is the case that sends a row twice.
   */
  protected async afterSend(_jobIds: string[]): Promise<void> {}

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
