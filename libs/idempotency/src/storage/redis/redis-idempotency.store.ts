import { randomUUID } from 'node:crypto';
import { fingerprintsDiffer } from '../../claim/claim-state';
import type { ClaimOutcome, ClaimRef, ClaimRequest, IdempotencyRecordView, IdempotencyStore, RecordState, StoredResponse } from '../idempotency-store';
import type { RedisClient } from './redis-client';
import { DEFAULT_REDIS_PREFIX, REDIS_FIELDS as F, redisRecordKey } from './redis-record-key';
import { defineScripts, type RedisScripts, type ScriptName } from './redis-scripts';
import { ReplicasNotReachedError, type ReplicaWait, runAndWait, toReplicaWait, type WaitForReplicas } from './replica-wait';
import { WriteBatch } from './write-batch';

export type { RedisClient } from './redis-client';
export type { WaitForReplicas } from './replica-wait';

export interface RedisIdempotencyStoreOptions {
  /** Prepended to every key. Default `'idempotency:'`. */
  prefix?: string;
  /**
   * Runs `WAIT count timeout` after each claim and completion, so that a write counts only once `count`
   * replicas hold it: a failover then loses no claim or answer that a client was told about. A claim that
   * did not reach them is given back and answered 503; a completion that did not is still answered (the
   * handler ran) and logged. Costs a round trip to the replicas per write. Default: off (Redis' asynchronous
   * replication: a failover may lose the last writes the primary acknowledged).
   */
  waitForReplicas?: WaitForReplicas;
}

/** Integers come back as numbers, or as strings from a client made with `stringNumbers`. */
type Reply = Array<Buffer | number | string | null>;

/**
 * The Redis store (ioredis). Each record is one hash under one key, and each operation one Lua script
 * on that key, so every decision is atomic and reads Redis' clock, and a cluster routes it to one slot.
 * Redis keeps the TTLs: a record's key expires with the record, and `purgeExpired()` has nothing to do.
 *
 * Durability is Redis': a claim acknowledged by a primary that fails over before replicating it is lost,
 * and a duplicate after the failover runs again. Transaction mode needs the PostgreSQL store.
 *
 * @example
 * const store = new RedisIdempotencyStore(new Redis(process.env.REDIS_URL));
 * const outcome = await store.claim({ scope: 'POST /orders', key: 'k1', fingerprint: null, leaseMs: 30_000, ttlMs: 86_400_000 });
 */
export class RedisIdempotencyStore implements IdempotencyStore {
  private readonly prefix: string;
  private readonly scripts: RedisScripts;
  private readonly replicaWait?: ReplicaWait;
  private readonly batch: WriteBatch;

  constructor(
    readonly client: RedisClient,
    options: RedisIdempotencyStoreOptions = {},
  ) {
    this.prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.scripts = defineScripts(client);
    this.replicaWait = toReplicaWait(options.waitForReplicas);
    this.batch = new WriteBatch(client);
  }

  async claim(request: ClaimRequest): Promise<ClaimOutcome> {
    const owner = randomUUID();
    const args = [owner, request.fingerprint ?? '', request.fingerprint === null ? '0' : '1', Math.ceil(request.leaseMs), Math.ceil(request.ttlMs)];
    const written = await this.write('claim', this.keyOf(request), args);
    const reply = written.reply as Reply;
    const replicas = written.replicas;
    switch (text(reply[0])) {
      case 'claimed': {
        const ref = { scope: request.scope, key: request.key, owner };
        // A claim a failover could lose lets a duplicate run the handler beside this one: it is given back
        // (the lease frees it if that fails too) and the client retries.
        if (replicas !== undefined && this.replicaWait && replicas < this.replicaWait.count) {
          await this.release(ref);
          throw new ReplicasNotReachedError(replicas, this.replicaWait);
        }
        return { status: 'claimed', ref, attempt: integer(reply[1]), takenOver: integer(reply[2]) === 1 };
      }
      case 'completed':
        return {
          status: 'completed',
          response: toResponse(reply[1], reply[2], reply[3]),
          record: { fingerprint: reply[5] ? text(reply[5]) : null, expiresInMs: integer(reply[4]) },
        };
      case 'in-flight':
        return { status: 'in-flight', retryAfterMs: integer(reply[1]) };
      default:
        return { status: 'fingerprint-mismatch' };
    }
  }

  async peek(request: ClaimRequest): Promise<Exclude<ClaimOutcome, { status: 'claimed' | 'in-flight' }> | undefined> {
    const read = await this.read(request.scope, request.key);
    if (!read || read.record.state !== 'completed') {
      // A live in-flight record with another fingerprint is refused as the claim would refuse it.
      return read && fingerprintsDiffer(read.record.fingerprint, request.fingerprint) ? { status: 'fingerprint-mismatch' } : undefined;
    }
    if (fingerprintsDiffer(read.record.fingerprint, request.fingerprint)) return { status: 'fingerprint-mismatch' };
    return {
      status: 'completed',
      response: read.record.response as StoredResponse,
      record: { fingerprint: read.record.fingerprint, expiresInMs: read.expiresInMs },
    };
  }

  async complete(ref: ClaimRef, response: StoredResponse, ttlMs: number): Promise<boolean> {
    const headers = JSON.stringify(response.headers);
    const { reply, replicas } = await this.write('complete', this.keyOf(ref), [ref.owner, response.status, headers, response.body, Math.ceil(ttlMs)]);
    // The answer is stored on the primary: the caller still answers (its handler ran), and the error is logged.
    if (replicas !== undefined && this.replicaWait && replicas < this.replicaWait.count) throw new ReplicasNotReachedError(replicas, this.replicaWait);
    return integer(reply) === 1;
  }

  async release(ref: ClaimRef): Promise<boolean> {
    return integer(await this.scripts.release(this.keyOf(ref), ref.owner)) === 1;
  }

  async renew(ref: ClaimRef, leaseMs: number): Promise<boolean> {
    return integer(await this.scripts.renew(this.keyOf(ref), ref.owner, Math.ceil(leaseMs))) === 1;
  }

  async find(scope: string, key: string): Promise<IdempotencyRecordView | undefined> {
    return (await this.read(scope, key))?.record;
  }

  /** Redis deletes a record when its key expires, which is when the record does. */
  purgeExpired(): Promise<number> {
    return Promise.resolve(0);
  }

  private async read(scope: string, key: string): Promise<{ record: IdempotencyRecordView; expiresInMs: number } | undefined> {
    const [clock, ...pairs] = (await this.scripts.read(redisRecordKey(this.prefix, scope, key))) as Reply;
    const now = integer(clock);
    const hash = new Map<string, Buffer>();
    for (let i = 0; i + 1 < pairs.length; i += 2) hash.set(text(pairs[i]), pairs[i + 1] as Buffer);
    const number = (field: string) => (hash.has(field) ? Number(text(hash.get(field))) : null);
    const expiresAt = number(F.expiresAt);
    // Redis deletes an expired key on its next access, or sooner; one that expires in the same millisecond counts as gone.
    if (expiresAt === null || expiresAt <= now) return undefined;
    const state = text(hash.get(F.state)) as RecordState;
    const date = (field: string) => {
      const ms = number(field);
      return ms === null ? null : new Date(ms);
    };
    return {
      expiresInMs: expiresAt - now,
      record: {
        scope,
        key,
        state,
        fingerprint: hash.has(F.fingerprint) ? text(hash.get(F.fingerprint)) : null,
        attempts: number(F.attempts) ?? 1,
        owner: hash.has(F.owner) ? text(hash.get(F.owner)) : null,
        createdAt: date(F.createdAt) ?? new Date(now),
        completedAt: date(F.completedAt),
        leaseExpiresAt: date(F.leaseExpiresAt),
        expiresAt: new Date(expiresAt),
        response: state === 'completed' ? toResponse(hash.get(F.status) ?? null, hash.get(F.headers) ?? null, hash.get(F.body) ?? null) : null,
      },
    };
  }

  /** A script that writes; with waitForReplicas, followed by WAIT on the same connection. */
  private async write(name: ScriptName, key: string, args: Array<string | number | Buffer>): Promise<{ reply: unknown; replicas?: number }> {
    this.batch.hold();
    if (!this.replicaWait) return { reply: await this.scripts[name](key, ...args) };
    return runAndWait(this.client, name, key, args, this.replicaWait);
  }

  private keyOf(ref: { scope: string; key: string }): string {
    return redisRecordKey(this.prefix, ref.scope, ref.key);
  }
}

function text(value: Buffer | number | string | null | undefined): string {
  return value === null || value === undefined ? '' : value.toString();
}

function integer(value: unknown): number {
  return typeof value === 'number' ? value : Number(String(value));
}

function toResponse(status: Buffer | number | string | null, headers: Buffer | number | string | null, body: Buffer | number | string | null): StoredResponse {
  return {
    status: status === null ? 200 : Number(text(status)),
    headers: headers === null ? [] : (JSON.parse(text(headers)) as Array<[string, string]>),
    body: Buffer.isBuffer(body) ? body : Buffer.alloc(0),
  };
}
