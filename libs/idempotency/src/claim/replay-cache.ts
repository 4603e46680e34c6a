import { LRUCache } from 'lru-cache';
import type { ClaimOutcome, StoredResponse } from '../storage/idempotency-store';
import { fingerprintsDiffer } from './claim-state';

export interface ReplayCacheOptions {
  /** How long an answer is kept at most, in ms (the record's own expiry comes first). */
  maxAgeMs: number;
  /** Bytes of answers kept at most, in all; the least recently used go first. */
  maxBytes: number;
}

interface Entry {
  fingerprint: string | null;
  response: StoredResponse;
}

type CachedOutcome = Extract<ClaimOutcome, { status: 'completed' | 'fingerprint-mismatch' }>;

/**
 * Completed answers kept in this process, so that a key's further duplicates are answered without a
 * round trip to the store. A completed record does not change until it expires, so an entry
 * holds until the record's expiry, measured on the database's clock; `maxAgeMs` bounds it further, for
 * a record deleted by hand.
 *
 * Filled by replays only: a key asked for twice is likely to be asked again, while most first requests
 * never are, so new keys cost no memory here.
 */
export class ReplayCache {
  private readonly entries: LRUCache<string, Entry>;

  constructor(private readonly options: ReplayCacheOptions) {
    this.entries = new LRUCache<string, Entry>({
      maxSize: options.maxBytes,
      // The body, the headers and the bookkeeping around them, roughly.
      sizeCalculation: (entry, id) =>
        256 + id.length + entry.response.body.length + entry.response.headers.reduce((sum, [name, value]) => sum + name.length + value.length + 32, 0),
    });
  }

  /** The answer for a duplicate of a completed record kept here, as the store would give it. */
  get(id: string, fingerprint: string | null): CachedOutcome | undefined {
    const entry = this.entries.get(id);
    if (!entry) return undefined;
    if (fingerprintsDiffer(entry.fingerprint, fingerprint)) return { status: 'fingerprint-mismatch' };
    return { status: 'completed', response: entry.response };
  }

  /**
   * Keeps a replay the store answered, for as long as its record stays the same. `askedAt` is when the
   * store was asked: the record's remaining life, as the store measured it, counts from no later than that.
   */
  remember(id: string, outcome: ClaimOutcome, askedAt: number): void {
    if (outcome.status !== 'completed' || !outcome.record) return;
    const ttl = Math.floor(Math.min(this.options.maxAgeMs, outcome.record.expiresInMs - (Date.now() - askedAt)));
    if (ttl < 1) return;
    // A body of its own: a small one read from the database may be a view into a shared 8 KiB block, which it would keep alive.
    const body = Buffer.allocUnsafeSlow(outcome.response.body.length);
    body.set(outcome.response.body);
    this.entries.set(id, { fingerprint: outcome.record.fingerprint, response: { ...outcome.response, body } }, { ttl });
  }
}
