import { setTimeout as sleep } from 'node:timers/promises';
import { loadIoRedis } from '../storage/redis/ioredis';
import { loadOptionalPeer } from '../optional-peer';
import type { OutboxRow } from './outbox-table';
import type { ResolvedOutboxOptions } from './outbox.options';

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

/** Redis does not answer (yet): an outage the relay waits out, not a fault of the code. */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError';
}

/**
 * The relay's BullMQ side: one Redis connection for all its queues, which fails fast while Redis is down,
 * and a queue per name, made on first use.
 */
export class BullMqSender {
  private readonly queues = new Map<string, BullQueue>();
  private redis?: Promise<RedisClient>;

  constructor(private readonly options: ResolvedOutboxOptions) {}

  /** Waits, up to `sendTimeout`, for Redis to be connected. */
  async ready(): Promise<void> {
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

  /**
   * Hands the rows to BullMQ, one `addBulk` per queue. BullMQ checks every job before adding any, so one
   * job it refuses for what it is (a bad option) would fail its whole batch, every time: such rows are
   * found with BullMQ's own checks, before anything is sent, and returned to be set aside. Any failure of
   * the send itself throws: the batch is retried whole.
   */
  async send(rows: OutboxRow[]): Promise<Map<string, string>> {
    const client = await this.connection();
    if (client.status !== 'ready') throw new RedisUnavailableError(`Redis is not connected (${client.status}).`);
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

  /** Closes the queues, then the connection they share. */
  async close(): Promise<void> {
    // The queues share the relay's connection, which is cut last: a graceful close may never end while Redis is down.
    await Promise.all([...this.queues.values()].map((queue) => queue.close().catch(() => undefined)));
    this.queues.clear();
    const redis = this.redis;
    this.redis = undefined;
    if (redis) (await redis).disconnect();
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
          throw new RedisUnavailableError(`Redis did not answer within ${this.options.sendTimeoutMs} ms.`);
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
}

function toJob(row: OutboxRow): { name: string; data: unknown; opts: Record<string, unknown> } {
  return { name: row.name, data: row.data, opts: { ...row.options, jobId: row.job_id } };
}
