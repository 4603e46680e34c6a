import type { DataSourceLike, QueryRunnerLike } from '../storage/typeorm-like';
import { IDEMPOTENCY_OUTBOX_TABLE, qualifiedTableName } from '../storage/table-name';
import type { ResolvedOutboxOptions } from './outbox.options';

/** An outbox row as the relay takes it. */
export interface OutboxRow {
  id: string;
  queue: string;
  name: string;
  data: unknown;
  options: Record<string, unknown>;
  job_id: string;
}

/**
 * The relay's SQL on the outbox table: take a batch of rows in the relay's transaction, mark them sent or
 * set one aside, and delete the rows sent long ago.
 */
export class OutboxTable {
  private readonly table: string;

  constructor(
    private readonly dataSource: DataSourceLike,
    private readonly options: ResolvedOutboxOptions,
  ) {
    this.table = qualifiedTableName(dataSource, IDEMPOTENCY_OUTBOX_TABLE);
  }

  /**
   * Locks up to `batchSize` unsent rows with `FOR UPDATE SKIP LOCKED` (relays on several instances take
   * disjoint rows), then, with `redeliverAfter`, rows sent that long ago and still not processed.
   */
  async lockBatch(runner: QueryRunnerLike): Promise<OutboxRow[]> {
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

  async markSent(runner: QueryRunnerLike, rows: OutboxRow[]): Promise<void> {
    await runner.query(`UPDATE ${this.table} SET sent_at = clock_timestamp(), sends = sends + 1 WHERE id = ANY($1::bigint[])`, [rows.map((row) => row.id)]);
  }

  /** Parks a row BullMQ will never take, with its error, so that it cannot block the rest. */
  async setAside(runner: QueryRunnerLike, id: string, error: string): Promise<void> {
    await runner.query(`UPDATE ${this.table} SET failed_at = clock_timestamp(), last_error = $2 WHERE id = $1`, [id, error]);
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
}
