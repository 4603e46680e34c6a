import { Logger } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { DETACH_TIMEOUT, DetachTimeoutError, type Partition, type PartitionCatalog } from './partition-catalog';
import type { PartitionPlan } from './partitioning.options';
import { isLockTimeout, SQL_STATE, sqlState } from './sql-state';

/**
 * The check before a drop takes its SHARE lock without waiting (a lock request in the queue would hold back
 * every completion and renewal, which write to every partition): this many tries, this far apart, then the next purge.
 */
const DROP_LOCK_TRIES = 5;
const DROP_LOCK_PAUSE_MS = 20;

/**
 * Keeps the partitions of the partitioned records table: makes them ahead of time (at the start of the app, at
 * each purge, and when a claim finds none for its record), and drops a partition whose range is over once every
 * record in it has expired. It checks that under a SHARE lock of the partition (taken without waiting: with
 * writes in progress it tries again later), then detaches it `CONCURRENTLY` (no lock that blocks reads or
 * writes; a wait for older transactions past 5 s leaves it pending, for a later purge to finish) and drops it.
 */
export class PartitionMaintainer {
  private readonly logger = new Logger('Idempotency');

  constructor(
    private readonly catalog: PartitionCatalog,
    private readonly plan: PartitionPlan,
  ) {}

  /**
   * The purge: tables a drop cut off left behind dropped, partitions ahead made, those whose records have all
   * expired dropped. Returns the rows the dropped partitions held (from their statistics).
   */
  async purge(): Promise<number> {
    await this.catalog.checkServerVersion();
    // Before the partitions are made: a table left behind bears the name of the partition it was.
    await this.dropLeftovers();
    await this.prepare();
    return this.dropExpiredPartitions();
  }

  /** The purge without making partitions ahead, for whoever does not know the app's interval (the command-line tool). */
  async dropExpired(): Promise<number> {
    await this.catalog.checkServerVersion();
    await this.dropLeftovers();
    return this.dropExpiredPartitions();
  }

  /**
   * Makes partitions so that every time from now to the end of the `ahead`-th interval after the current one
   * falls in one. The time is walked from now: a partition (of any width: the interval may have changed since it
   * was made) is stepped over to its end, and a gap is filled from the interval's grid point before it (or the end
   * of the partition before it) up to the next grid point (or the start of the next partition).
   */
  async prepare(): Promise<void> {
    await this.catalog.checkServerVersion();
    const { intervalMs, ahead } = this.plan;
    const now = await this.catalog.now();
    const until = (Math.floor(now / intervalMs) + ahead + 1) * intervalMs;
    let partitions = await this.catalog.partitions();
    for (let time = now; time < until;) {
      const covering = partitions.find((partition) => covers(partition, time));
      if (covering) {
        time = covering.to.getTime();
        continue;
      }
      const { from, to } = gap(time, partitions, intervalMs);
      try {
        await this.catalog.create(new Date(from), new Date(to));
      } catch (error) {
        // Another instance may have made one meanwhile: the walk goes on from what there is now.
        if (!(await this.catalog.partitions()).some((partition) => covers(partition, time))) throw error;
      }
      partitions = await this.catalog.partitions();
    }
  }

  /**
   * Drops the partitions whose range is over and whose records have all expired; returns the rows they held.
   * PostgreSQL detaches one partition of a table at a time: a detach left pending is finished first, and while
   * one stays pending no other begins.
   */
  private async dropExpiredPartitions(): Promise<number> {
    const partitions = await this.catalog.partitions();
    let dropped = 0;
    for (const partition of partitions.filter((partition) => partition.detaching)) {
      const rows = await this.finishDetach(partition);
      if (rows === undefined) return dropped;
      dropped += rows;
    }
    for (const partition of partitions.filter((partition) => partition.past && !partition.detaching)) {
      const rows = await this.dropIfExpired(partition);
      if (rows === undefined) return dropped;
      dropped += rows;
    }
    return dropped;
  }

  /**
   * Drops a partition whose range is over once every record in it has expired. Returns the rows it held; 0 when
   * it is kept (a live record, or writes in progress: the next purge tries again); `undefined` when its detach
   * was cut off and stays pending.
   */
  private async dropIfExpired(partition: Partition): Promise<number | undefined> {
    // A quick look first, from the expires_at index, without a lock.
    if (!(await this.catalog.allExpired(partition.name))) return 0;
    const rows = await this.catalog.countRows(partition);
    if (!(await this.confirmAllExpired(partition))) return 0;
    if (!(await this.detach(partition, 'CONCURRENTLY'))) return undefined;
    await this.catalog.drop(partition.name);
    return rows;
  }

  /**
   * Whether every record of the partition has expired, under a SHARE lock of it. After it, no write can make a
   * record of the partition live again: completion and renewal leave expired records alone, a take-over never
   * finds one, and new records go to the current partition.
   */
  private async confirmAllExpired(partition: Partition): Promise<boolean> {
    for (let tries = 1; ; tries++) {
      try {
        return await this.catalog.allExpiredUnderShareLock(partition);
      } catch (error) {
        if (!isLockTimeout(error)) throw error;
        if (tries === DROP_LOCK_TRIES) return false;
        await sleep(DROP_LOCK_PAUSE_MS);
      }
    }
  }

  /**
   * Finishes a detach that was cut off (the partition is already out of every new query) and drops the
   * partition, provided its range is over and its records have all expired, as they were when the purge began
   * the detach. Any other pending detach was begun by hand, and is left to whoever began it. Returns the rows
   * dropped, or `undefined` when the detach stays pending.
   */
  private async finishDetach(partition: Partition): Promise<number | undefined> {
    if (!partition.past || !(await this.catalog.allExpired(partition.name))) {
      this.logger.warn(
        `A detach of the partition ${partition.name} of the idempotency records is pending, but ` +
          `${partition.past ? 'it holds records that have not expired' : 'its range is not over'}. Claims no longer see its records, ` +
          `and no other partition can be detached meanwhile: finish it by hand (ALTER TABLE ${this.catalog.table} DETACH PARTITION ` +
          `${partition.name} FINALIZE), then rename the table if its records are still needed.`,
      );
      return undefined;
    }
    const rows = await this.catalog.countRows(partition);
    if (!(await this.detach(partition, 'FINALIZE'))) return undefined;
    await this.catalog.drop(partition.name);
    return rows;
  }

  /** False when the detach is not done: it waited past DETACH_TIMEOUT (or the role's lock_timeout), or another detach of the table is under way. */
  private async detach(partition: Partition, mode: 'CONCURRENTLY' | 'FINALIZE'): Promise<boolean> {
    try {
      await this.catalog.detach(partition, mode);
      return true;
    } catch (error) {
      if (error instanceof DetachTimeoutError || isLockTimeout(error)) {
        this.logger.warn(
          `Detaching the partition ${partition.name} of the idempotency records waited ${DETACH_TIMEOUT} for the transactions ` +
            'that began before it (is one left open?); a later purge finishes it.',
        );
        return false;
      }
      // Another instance detached it first: as good.
      if (!(await this.catalog.partitions()).some((other) => other.name === partition.name)) return true;
      // Another instance's detach, of this partition or another, is under way.
      if (sqlState(error) === SQL_STATE.objectNotInPrerequisiteState) return false;
      throw error;
    }
  }

  /** Drops the tables a drop cut off between its detach and its drop, once they hold only expired records. */
  private async dropLeftovers(): Promise<void> {
    for (const name of await this.catalog.leftovers()) {
      if (await this.catalog.allExpired(name)) await this.catalog.drop(name);
    }
  }
}

function covers(partition: Partition, time: number): boolean {
  return partition.from.getTime() <= time && time < partition.to.getTime();
}

/**
 * The range of a new partition for `time`, which no partition covers: from the interval's grid point at or
 * before it (or the end of a partition after that point), to the next grid point (or the start of a partition before it).
 */
function gap(time: number, partitions: Partition[], intervalMs: number): { from: number; to: number } {
  const gridPoint = Math.floor(time / intervalMs) * intervalMs;
  const from = Math.max(gridPoint, ...partitions.map((partition) => partition.to.getTime()).filter((end) => end <= time));
  const to = Math.min(gridPoint + intervalMs, ...partitions.map((partition) => partition.from.getTime()).filter((start) => start > time));
  return { from, to };
}
