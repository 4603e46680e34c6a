import type { IdempotencyRecordView } from '../storage/idempotency-store';

/** Records found for a key, with the store's clock at the time of reading (leases are judged by it). */
export interface FoundRecords {
  now: Date;
  records: IdempotencyRecordView[];
  /** More records matched than the limit let through. */
  truncated: boolean;
}

/** Live records of one state, as `stats` counts them. */
export interface StateCounts {
  /** In flight, lease still running: a request is being handled now. */
  inFlight: number;
  /** In flight, lease run out: its process died or stalled; the next request with the key takes it over. */
  stuck: number;
  completed: number;
  /** Past `expires_at`: count as absent, deleted by the next purge. */
  expired: number;
}

export interface ScopeCounts {
  scope: string;
  /** Live records (not expired) in the scope. */
  live: number;
  inFlight: number;
  stuck: number;
  completed: number;
}

export interface StuckClaim {
  scope: string;
  key: string;
  attempts: number;
  createdAt: Date;
  /** When the lease ran out: the claim is stuck since then. */
  leaseExpiredAt: Date | null;
}

export interface RecordStats {
  now: Date;
  states: StateCounts;
  /** The scopes with the most live records, most first. */
  scopes: ScopeCounts[];
  /** How many scopes hold live records in all. */
  scopeCount: number;
  /** The claims stuck longest, oldest first. */
  oldestStuck: StuckClaim[];
}

export interface PurgeProgress {
  deleted: number;
  batches: number;
}

/**
 * What the command-line tool reads and deletes, whichever store holds the records. It goes beyond the
 * store contract (all scopes of a key, counts) without changing it: each store's layout is read directly.
 */
export interface RecordSource {
  /** Where the records are, for messages (no password). */
  readonly description: string;
  /** Live records with `key`, in `scope` or in every scope. */
  find(key: string, options: { scope?: string; limit: number }): Promise<FoundRecords>;
  stats(options: { topScopes: number; topStuck: number }): Promise<RecordStats>;
  /**
   * Deletes expired records in batches of `batchSize` until none is left; `undefined` where the store
   * expires records itself.
   */
  purge(batchSize: number, onBatch?: (progress: PurgeProgress) => void): Promise<PurgeProgress | undefined>;
  close(): Promise<void>;
}
