import { randomUUID } from 'node:crypto';
import IORedis, { type Cluster } from 'ioredis';
import { idempotencyKeyHash } from 'nestjs-idempotency';
import { REDIS_FIELDS, redisRecordKey } from '../../libs/idempotency/src/storage/redis/redis-record-key';
import { runBuiltCli } from '../support/cli';
import { dropPrefix, REDIS_URL, uniquePrefix } from '../support/redis';
import { RedisCluster } from '../support/redis-cluster';

const MINUTE = 60_000;

/** `stats --json`, as far as these checks read it. */
interface StatsJson {
  states: Record<string, number>;
  scopeCount: number;
  scopes: unknown[];
  oldestStuck: unknown[];
}

interface HashRecord {
  state: 'in_flight' | 'completed';
  attempts: number;
  created: number;
  expires: number;
  lease?: number;
  completed?: number;
  fingerprint?: string;
  owner?: string;
  status?: number;
  headers?: Array<[string, string]>;
  body?: Buffer;
}

/** The shared Redis, or a Redis Cluster of the suite's own, whose URL names one of its nodes. */
interface Target {
  url: string;
  redis: IORedis | Cluster;
  /** How the command line names it. */
  described: string;
  close(): Promise<void>;
}

function oneServer(label: string): Promise<Target> {
  const redis = new IORedis(REDIS_URL);
  return Promise.resolve({
    url: REDIS_URL,
    redis,
    described: `Redis at ${REDIS_URL}`,
    close: async () => {
      await dropPrefix(label);
      redis.disconnect();
    },
  });
}

async function ownCluster(): Promise<Target> {
  const cluster = await RedisCluster.start();
  const redis = await cluster.readyClient();
  const url = `redis://127.0.0.1:${cluster.nodes[0].port}`;
  return {
    url,
    redis,
    described: `Redis Cluster at ${url}`,
    close: async () => {
      redis.disconnect();
      await cluster.stop();
    },
  };
}

/**
 * `nestjs-idempotency --redis` run for real against dist. The records are written as the Redis store
 * lays them out (`storage/redis/redis-record-key.ts`): one hash per record, times in ms since the epoch.
 * On a cluster they spread over its masters, and the command line reads every one.
 */
describe.each([
  ['one Redis server', oneServer],
  ['a Redis Cluster', ownCluster],
])('the nestjs-idempotency command line on %s', (_target, open: (label: string) => Promise<Target>) => {
  const label = uniquePrefix('cli');
  const prefix = `${label}:`;
  let target: Target;
  let redis: Target['redis'];
  const cli = (...args: string[]) => runBuiltCli([...args, '--redis', target.url, '--prefix', prefix]);
  const order = `order:${randomUUID()}`; // a ':' in the key must not confuse the layout
  const job = `job-${randomUUID()}`;
  const owner = randomUUID();
  let now: number;

  async function write(scope: string, key: string, record: HashRecord): Promise<void> {
    const fields: Record<string, string | Buffer> = {
      [REDIS_FIELDS.state]: record.state,
      [REDIS_FIELDS.attempts]: String(record.attempts),
      [REDIS_FIELDS.createdAt]: String(record.created),
      [REDIS_FIELDS.expiresAt]: String(record.expires),
    };
    if (record.lease !== undefined) fields[REDIS_FIELDS.leaseExpiresAt] = String(record.lease);
    if (record.completed !== undefined) fields[REDIS_FIELDS.completedAt] = String(record.completed);
    if (record.fingerprint !== undefined) fields[REDIS_FIELDS.fingerprint] = record.fingerprint;
    if (record.owner !== undefined) fields[REDIS_FIELDS.owner] = record.owner;
    if (record.status !== undefined) fields[REDIS_FIELDS.status] = String(record.status);
    if (record.headers !== undefined) fields[REDIS_FIELDS.headers] = JSON.stringify(record.headers);
    if (record.body !== undefined) fields[REDIS_FIELDS.body] = record.body;
    const redisKey = redisRecordKey(prefix, scope, key);
    await redis.hset(redisKey, fields);
    await redis.pexpireat(redisKey, record.expires);
  }

  beforeAll(async () => {
    target = await open(label);
    redis = target.redis;
    const [seconds, microseconds] = await redis.time();
    now = Number(seconds) * 1000 + Math.floor(Number(microseconds) / 1000);
    const completed = (body: Buffer): HashRecord => ({
      state: 'completed',
      attempts: 1,
      created: now - 2 * MINUTE,
      completed: now - 2 * MINUTE + 40,
      expires: now + 24 * 60 * MINUTE,
      fingerprint: 'fp-order',
      owner,
      status: 201,
      headers: [['content-type', 'application/octet-stream']],
      body,
    });
    await write('POST /orders', order, completed(Buffer.from([0xff, 0x00, 0x10])));
    await write('POST /orders#acct_2', order, completed(Buffer.from('second')));
    await write('job:fulfilment', job, {
      state: 'in_flight',
      attempts: 3,
      created: now - 10 * MINUTE,
      lease: now - 7 * MINUTE,
      expires: now + 60 * MINUTE,
      owner,
    });
    await write('run', `running-${job}`, { state: 'in_flight', attempts: 1, created: now, lease: now + 5 * MINUTE, expires: now + 60 * MINUTE, owner });
    // Keys of the prefix that are not records are passed over.
    await redis.set(`${prefix}meta`, 'not a record');
    await redis.set(redisRecordKey(prefix, 'POST /orders', `${order}-string`), 'not a hash either');
  });
  afterAll(async () => {
    await target?.close();
  });

  it('inspect shows a completed record, in every scope without --scope, a binary body as base64', async () => {
    const run = await cli('inspect', order);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toContain(`2 live records with key "${order}"`);
    expect(run.stdout).toMatch(/^scope\s+POST \/orders$/m);
    expect(run.stdout).toMatch(/^scope\s+POST \/orders#acct_2$/m);
    expect(run.stdout).toMatch(/^created\s+\S+Z \(2m( \d+s)? ago\)$/m);

    const json = await cli('inspect', order, '--scope', 'POST /orders', '--json', '--body');
    expect(json.code).toBe(0);
    const { records, source } = JSON.parse(json.stdout) as { records: unknown[]; source: string };
    expect(source).toBe(`${target.described} (prefix ${prefix})`);
    expect(records).toEqual([
      {
        scope: 'POST /orders',
        key: order,
        state: 'completed',
        stuck: false,
        attempts: 1,
        createdAt: new Date(now - 2 * MINUTE).toISOString(),
        completedAt: new Date(now - 2 * MINUTE + 40).toISOString(),
        leaseExpiresAt: null,
        leaseExpired: null,
        expiresAt: new Date(now + 24 * 60 * MINUTE).toISOString(),
        response: { status: 201, headers: [['content-type', 'application/octet-stream']], bodyBytes: 3, body: '/wAQ', bodyEncoding: 'base64' },
        fingerprint: 'fp-order',
        owner,
        keyHash: idempotencyKeyHash('POST /orders', order),
      },
    ]);
  });

  it('inspect says a claim whose lease ran out is stuck', async () => {
    const run = await cli('inspect', job, '--scope', 'job:fulfilment');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^state\s+in flight, STUCK: lease ran out 7m( \d+s)? ago/m);
    expect(run.stdout).toMatch(/^attempts\s+3$/m);
  });

  it('inspect exits with 1 when no record has the key', async () => {
    for (const args of [
      ['inspect', `missing-${order}`],
      ['inspect', order, '--scope', 'POST /elsewhere'],
      ['inspect', `${order}-string`],
    ]) {
      const run = await cli(...args);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^nestjs-idempotency: No live record with key ".+" in (any scope|scope ".+") \(Redis (Cluster )?at /);
    }
  });

  it('stats counts the records of the prefix by state and scope', async () => {
    const run = await cli('stats', '--json');
    expect(run.code).toBe(0);
    const stats = JSON.parse(run.stdout) as StatsJson;
    expect(stats.states).toEqual({ inFlight: 1, stuck: 1, completed: 2, expired: 0 });
    expect(stats.scopeCount).toBe(4);
    expect(stats.oldestStuck).toEqual([
      {
        scope: 'job:fulfilment',
        key: job,
        attempts: 3,
        createdAt: new Date(now - 10 * MINUTE).toISOString(),
        leaseExpiredAt: new Date(now - 7 * MINUTE).toISOString(),
      },
    ]);
    expect((await cli('stats')).stdout).toMatch(/^expired \(Redis deletes them itself\)\s+0$/m);
  });

  it('purge has nothing to do: Redis expires the records itself', async () => {
    const run = await cli('purge');
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(run.stdout).toMatch(/^Nothing to purge: Redis (Cluster )?at .+ deletes each record itself when it expires/);
    expect(JSON.parse((await cli('purge', '--json')).stdout)).toMatchObject({ deleted: 0, selfExpiring: true });
    expect(await redis.exists(redisRecordKey(prefix, 'POST /orders', order))).toBe(1);
  });

  it('says what to check when Redis cannot be reached, and refuses PostgreSQL options with --redis', async () => {
    const down = await runBuiltCli(['stats', '--redis', 'redis://127.0.0.1:1']);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/^nestjs-idempotency: Cannot connect to Redis at redis:\/\/127\.0\.0\.1:1 \(.*ECONNREFUSED.*\)\. Check --redis/);
    expect(down.stderr).not.toMatch(/^\s+at /m);
    const mixed = await runBuiltCli(['stats', '--redis', target.url, '--schema', 'x']);
    expect(mixed.code).toBe(2);
    expect(mixed.stderr).toMatch(/--schema is for PostgreSQL/);
  });
});
