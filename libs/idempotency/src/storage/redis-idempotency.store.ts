import { createHash, randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type {
  ClaimOutcome,
  ClaimRef,
  ClaimRequest,
  IdempotencyRecordView,
  IdempotencyStore,
  RecordState,
  StoredResponse,
} from './idempotency-store';
import { DEFAULT_REDIS_PREFIX, REDIS_FIELDS as F, redisRecordKey } from './redis-record-key';

/** An ioredis client: a single server (`Redis`) or a `Cluster`. */
export type RedisClient = Redis | Cluster;

export interface RedisIdempotencyStoreOptions {
  /** Prepended to every key. Default `'idempotency:'`. */
  prefix?: string;
}

/**
 * The clock every script reads: Redis' own (`TIME`), in ms. Scripts that call it before writing need
 * effects replication, the default since Redis 5; asking for it keeps Redis 4 correct too (HSET with
 * several fields needs 4.0).
 */
const NOW = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * The claim, decided and written in one script, so no other client sees a half-made decision.
 * ARGV: owner, fingerprint, has fingerprint ('1'/'0'), leaseMs, ttlMs. A script that ran but whose reply
 * was lost may be sent again by ioredis after a reconnection: finding its own owner, it answers as it did.
 * Replies: {'claimed', attempt, takenOver}, {'completed', status, headers, body, expiresInMs, fingerprint|false},
 * {'in-flight', retryAfterMs}, {'mismatch'}.
 */
const CLAIM = `${NOW}
local key, owner, fp, hasFp = KEYS[1], ARGV[1], ARGV[2], ARGV[3] == '1'
local leaseMs, ttlMs = tonumber(ARGV[4]), tonumber(ARGV[5])
local r = redis.call('HMGET', key, '${F.state}', '${F.fingerprint}', '${F.leaseExpiresAt}', '${F.expiresAt}', '${F.attempts}', '${F.createdAt}', '${F.owner}')
if r[1] == 'in_flight' and r[7] == owner then
  local attempt = tonumber(r[5])
  return {'claimed', attempt, attempt > 1 and 1 or 0}
end
local function start(attempts, created)
  -- The lease may outlast the TTL; the record must not expire before its lease does.
  local expires = now + math.max(ttlMs, leaseMs)
  -- A record taken over or expired leaves fields (an answer, a fingerprint) that the new one must not keep.
  redis.call('DEL', key)
  if hasFp then
    redis.call('HSET', key, '${F.state}', 'in_flight', '${F.owner}', owner, '${F.attempts}', attempts,
      '${F.createdAt}', created, '${F.leaseExpiresAt}', now + leaseMs, '${F.expiresAt}', expires, '${F.fingerprint}', fp)
  else
    redis.call('HSET', key, '${F.state}', 'in_flight', '${F.owner}', owner, '${F.attempts}', attempts,
      '${F.createdAt}', created, '${F.leaseExpiresAt}', now + leaseMs, '${F.expiresAt}', expires)
  end
  redis.call('PEXPIREAT', key, expires)
end
if not r[1] or tonumber(r[4]) <= now then
  start(1, now)
  return {'claimed', 1, 0}
end
if hasFp and r[2] and r[2] ~= fp then return {'mismatch'} end
if r[1] == 'completed' then
  local s = redis.call('HMGET', key, '${F.status}', '${F.headers}', '${F.body}')
  return {'completed', s[1], s[2], s[3], tonumber(r[4]) - now, r[2] or false}
end
local lease = tonumber(r[3])
if lease > now then return {'in-flight', lease - now} end
local attempt = tonumber(r[5]) + 1
start(attempt, r[6])
return {'claimed', attempt, 1}`;

/**
 * Stores the response, fenced on the owner. ARGV: owner, status, headers (JSON), body, ttlMs. Like a
 * second completion, one sent again by ioredis after a lost reply changes nothing and answers 0: the
 * answer is stored all the same, and only reported as fenced.
 */
const COMPLETE = `${NOW}
local key = KEYS[1]
local r = redis.call('HMGET', key, '${F.state}', '${F.owner}')
if r[1] ~= 'in_flight' or r[2] ~= ARGV[1] then return 0 end
local expires = now + tonumber(ARGV[5])
redis.call('HSET', key, '${F.state}', 'completed', '${F.status}', ARGV[2], '${F.headers}', ARGV[3], '${F.body}', ARGV[4],
  '${F.completedAt}', now, '${F.expiresAt}', expires)
redis.call('HDEL', key, '${F.leaseExpiresAt}')
redis.call('PEXPIREAT', key, expires)
return 1`;

/** Deletes the in-flight record, fenced on the owner. ARGV: owner. */
const RELEASE = `
local key = KEYS[1]
local r = redis.call('HMGET', key, '${F.state}', '${F.owner}')
if r[1] ~= 'in_flight' or r[2] ~= ARGV[1] then return 0 end
redis.call('DEL', key)
return 1`;

/** Extends the lease from now, fenced on the owner. ARGV: owner, leaseMs. */
const RENEW = `${NOW}
local key = KEYS[1]
local r = redis.call('HMGET', key, '${F.state}', '${F.owner}', '${F.expiresAt}')
if r[1] ~= 'in_flight' or r[2] ~= ARGV[1] then return 0 end
local lease = now + tonumber(ARGV[2])
local expires = math.max(tonumber(r[3]), lease)
redis.call('HSET', key, '${F.leaseExpiresAt}', lease, '${F.expiresAt}', expires)
redis.call('PEXPIREAT', key, expires)
return 1`;

/** The record and Redis' clock, read together. Reply: {now, field, value, field, value...}. */
const READ = `${NOW}
local r = redis.call('HGETALL', KEYS[1])
table.insert(r, 1, now)
return r`;

const SCRIPTS = { claim: CLAIM, complete: COMPLETE, release: RELEASE, renew: RENEW, read: READ };

/** Integers come back as numbers, or as strings from a client made with `stringNumbers`. */
type Reply = Array<Buffer | number | string | null>;
type Call = (key: string, ...args: Array<string | number | Buffer>) => Promise<unknown>;

/**
 * Defines the scripts on the client as ioredis commands (each sends EVALSHA, and EVAL once after a script
 * cache miss). The names carry a hash of the script, so that a client shared with another version of
 * this library runs each version's own scripts.
 */
function defineScripts(client: RedisClient): Record<keyof typeof SCRIPTS, Call> {
  const commands = {} as Record<keyof typeof SCRIPTS, Call>;
  for (const [name, lua] of Object.entries(SCRIPTS) as Array<[keyof typeof SCRIPTS, string]>) {
    const command = `idempotency_${name}_${createHash('sha1').update(lua).digest('hex').slice(0, 8)}`;
    if (!(command in client)) client.defineCommand(command, { numberOfKeys: 1, lua });
    // The Buffer variant keeps bodies as bytes; integer replies are numbers either way.
    const call = (client as unknown as Record<string, Call>)[`${command}Buffer`];
    commands[name] = call.bind(client);
  }
  return commands;
}

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
  private readonly scripts: Record<keyof typeof SCRIPTS, Call>;

  constructor(
    readonly client: RedisClient,
    options: RedisIdempotencyStoreOptions = {},
  ) {
    this.prefix = options.prefix ?? DEFAULT_REDIS_PREFIX;
    this.scripts = defineScripts(client);
  }

  async claim(request: ClaimRequest): Promise<ClaimOutcome> {
    const owner = randomUUID();
    const reply = (await this.scripts.claim(
      this.keyOf(request),
      owner,
      request.fingerprint ?? '',
      request.fingerprint === null ? '0' : '1',
      Math.ceil(request.leaseMs),
      Math.ceil(request.ttlMs),
    )) as Reply;
    switch (text(reply[0])) {
      case 'claimed':
        return { status: 'claimed', ref: { scope: request.scope, key: request.key, owner }, attempt: integer(reply[1]), takenOver: integer(reply[2]) === 1 };
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
      return read && mismatches(read.record.fingerprint, request.fingerprint) ? { status: 'fingerprint-mismatch' } : undefined;
    }
    if (mismatches(read.record.fingerprint, request.fingerprint)) return { status: 'fingerprint-mismatch' };
    return {
      status: 'completed',
      response: read.record.response as StoredResponse,
      record: { fingerprint: read.record.fingerprint, expiresInMs: read.expiresInMs },
    };
  }

  async complete(ref: ClaimRef, response: StoredResponse, ttlMs: number): Promise<boolean> {
    const headers = JSON.stringify(response.headers);
    return integer(await this.scripts.complete(this.keyOf(ref), ref.owner, response.status, headers, response.body, Math.ceil(ttlMs))) === 1;
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
  async purgeExpired(): Promise<number> {
    return 0;
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

  private keyOf(ref: { scope: string; key: string }): string {
    return redisRecordKey(this.prefix, ref.scope, ref.key);
  }
}

function mismatches(stored: string | null, fingerprint: string | null): boolean {
  return stored !== null && fingerprint !== null && stored !== fingerprint;
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
