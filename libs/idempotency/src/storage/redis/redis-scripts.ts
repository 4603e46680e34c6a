import { createHash } from 'node:crypto';
import type { RedisClient } from './redis-client';
import { REDIS_FIELDS as F } from './redis-record-key';

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
 * The claim, decided and written in one script, so no other client sees a half-made decision. It follows
 * `decide()` of `claim/claim-state.ts` step by step (start, start-over, mismatch, replay, in-flight,
 * take-over). ARGV: owner, fingerprint, has fingerprint ('1'/'0'), leaseMs, ttlMs. A script that ran but
 * whose reply was lost may be sent again by ioredis after a reconnection: finding its own owner, it
 * answers as it did.
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
-- start, or start-over: an expired record counts as absent.
if not r[1] or tonumber(r[4]) <= now then
  start(1, now)
  return {'claimed', 1, 0}
end
-- mismatch: a missing fingerprint field (false) on either side matches any.
if hasFp and r[2] and r[2] ~= fp then return {'mismatch'} end
if r[1] == 'completed' then
  local s = redis.call('HMGET', key, '${F.status}', '${F.headers}', '${F.body}')
  return {'completed', s[1], s[2], s[3], tonumber(r[4]) - now, r[2] or false}
end
-- in-flight while the lease has time left (an in-flight record without a lease keeps it until it expires);
-- take-over once the lease ran out, its last millisecond included.
local lease = tonumber(r[3])
if not lease then return {'in-flight', tonumber(r[4]) - now} end
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

/** A script of the store, called with the record's key and its ARGV. */
export type ScriptCall = (key: string, ...args: Array<string | number | Buffer>) => Promise<unknown>;

export type RedisScripts = Record<keyof typeof SCRIPTS, ScriptCall>;

/**
 * Defines the scripts on the client as ioredis commands (each sends EVALSHA, and EVAL once after a script
 * cache miss). The names carry a hash of the script, so that a client shared with another version of
 * this library runs each version's own scripts.
 */
export function defineScripts(client: RedisClient): RedisScripts {
  const commands = {} as RedisScripts;
  for (const [name, lua] of Object.entries(SCRIPTS) as Array<[keyof typeof SCRIPTS, string]>) {
    const command = `idempotency_${name}_${createHash('sha1').update(lua).digest('hex').slice(0, 8)}`;
    if (!(command in client)) client.defineCommand(command, { numberOfKeys: 1, lua });
    // The Buffer variant keeps bodies as bytes; integer replies are numbers either way.
    const call = (client as unknown as Record<string, ScriptCall>)[`${command}Buffer`];
    commands[name] = call.bind(client);
  }
  return commands;
}
