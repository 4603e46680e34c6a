/**
 * What nestjs-idempotency costs per request, next to the same I/O done by hand (the floor), the same route
 * without it, and a peer.
 *
 *   npm run bench        (BENCH_DURATION=5 seconds per run, BENCH_ROUNDS=3)
 *   BENCH_ONLY=<regex>   only the scenarios whose name matches (no targets, no hot key, no results.json)
 *   BENCH_AB=<git ref or dist folder>   also runs this app on the other build of the library, beside this one
 *   BENCH_HOT=1          with BENCH_ONLY: the hot key too, where the scenarios start the PostgreSQL app
 *
 * Starts bench/app.ts (ours, on PostgreSQL, on Redis, and on MariaDB through the MySQL store) and
 * bench/peer/app.js (@node-idempotency/nestjs with its Redis adapter, installed in its own folder on first use)
 * as processes of their own, against the local PostgreSQL, MariaDB and Redis, and drives them with autocannon
 * from this process. Scenarios run in rounds, interleaved, and report their median round, so that a noisy moment
 * on a shared machine hits every scenario alike; ratios are to the baseline of the same run. Prints a table, the
 * targets and the model of the added latency, and writes bench/results.json.
 */
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { Client } from 'pg';
import IORedis from 'ioredis';
import { otherBuild } from './ab';
import { type App, cpuBetween, cpuTimes, drive, hot, installPeer, isPeer, type Measured, order, post, type Scenario, type Server, start } from './driver';
import { compareMariaDb, printHotKey, printMariaDbComparison, printTable } from './report';
import { compareBuilds, model, NAMES, ONE_CONNECTION, printAb, printModel, printTargets, targets } from './targets';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const MARIADB_URL = process.env.MARIADB_URL ?? 'mysql://root@127.0.0.1:3306';
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ONLY = process.env.BENCH_ONLY ? new RegExp(process.env.BENCH_ONLY) : undefined;
const AB = process.env.BENCH_AB;
const CONNECTIONS = 32;
const POOL = 10;
const PRODUCTS = 1000;
const root = join(__dirname, '../..');
const peerFolder = join(root, 'bench/peer');

const scenario = (name: string, app: App, path: string, keys: Scenario['keys']): Scenario => ({ name, app, path, keys, connections: CONNECTIONS });
const THROUGHPUT: Scenario[] = [
  scenario(NAMES.baseline, 'ours', '/baseline', 'none'),
  scenario(NAMES.lease, 'ours', '/lease', 'fresh'),
  scenario(NAMES.leaseFloor, 'ours', '/floor/lease', 'fresh'),
  scenario(NAMES.transaction, 'ours', '/transaction', 'fresh'),
  scenario(NAMES.transactionFloor, 'ours', '/floor/transaction', 'fresh'),
  scenario(NAMES.shop, 'ours', '/shop', 'none'),
  scenario(NAMES.shopIdempotent, 'ours', '/shop/idempotent', 'fresh'),
  scenario(NAMES.shopFloor, 'ours', '/floor/shop', 'fresh'),
  scenario(NAMES.keptReplays, 'ours', '/lease', 'replay'),
  scenario('replays, transaction mode', 'ours', '/transaction', 'replay'),
  scenario(NAMES.storeReplays, 'uncached', '/lease', 'replay'),
  // What bounds the replays: the app answering with no I/O, and with the one round trip a replay from the store makes;
  // and for reference, the route without I/O behind an interceptor that only passes through (Nest's chain).
  scenario(NAMES.ceiling, 'ours', '/calibrate/none', 'none'),
  scenario(NAMES.interceptedCeiling, 'ours', '/calibrate/intercepted', 'none'),
  scenario(NAMES.selectCeiling, 'ours', '/calibrate/select', 'none'),
  scenario('replays, transaction mode, replayCache: false', 'uncached', '/transaction', 'replay'),
  scenario('MariaDB: baseline (no @Idempotent)', 'mariadb', '/baseline', 'none'),
  scenario('MariaDB: first requests, lease mode', 'mariadb', '/lease', 'fresh'),
  scenario('MariaDB: first requests, transaction mode', 'mariadb', '/transaction', 'fresh'),
  scenario('MariaDB: replays, lease mode, replayCache: false', 'mariadb', '/lease', 'replay'),
  scenario('MariaDB: replays, transaction mode, replayCache: false', 'mariadb', '/transaction', 'replay'),
  scenario(NAMES.redisBaseline, 'redis', '/baseline', 'none'),
  scenario(NAMES.redis, 'redis', '/lease', 'fresh'),
  scenario(NAMES.redisFloor, 'redis', '/floor/redis', 'fresh'),
  scenario(NAMES.redisReplays, 'redis', '/lease', 'replay'),
  scenario('peer: baseline (NestJS 10)', 'peer', '/baseline', 'none'),
  scenario(NAMES.peer, 'peer', '/peer', 'fresh'),
  scenario(NAMES.peerReplays, 'peer', '/peer', 'replay'),
  scenario(NAMES.peer12Baseline, 'peer12', '/baseline', 'none'),
  scenario(NAMES.peer12, 'peer12', '/peer', 'fresh'),
  scenario(NAMES.peer12Replays, 'peer12', '/peer', 'replay'),
];
const CALIBRATION: Scenario[] = [
  { ...scenario(NAMES.calibrateNone, 'ours', '/calibrate/none', 'none'), connections: 1 },
  { ...scenario(NAMES.calibrateSelect, 'ours', '/calibrate/select', 'none'), connections: 1 },
  { ...scenario(NAMES.calibrateCommit, 'ours', '/calibrate/commit', 'none'), connections: 1 },
];
const LATENCY: Scenario[] = [
  ...THROUGHPUT.filter((each) => !isPeer(each.app) && !each.path.startsWith('/calibrate/')).map((each) => ({
    ...each,
    name: `${each.name}${ONE_CONNECTION}`,
    connections: 1,
  })),
  ...CALIBRATION.map((each) => ({ ...each, name: `${each.name}${ONE_CONNECTION}` })),
];
/** In an A/B run, the library's routes (and the baseline, to show the noise) on the other build too. */
const twinOf = (each: Scenario): Scenario[] =>
  AB && ['ours', 'uncached', 'redis'].includes(each.app) && !/^\/(floor|calibrate)\//.test(each.path)
    ? [each, { ...each, name: `${each.name} [other build]`, app: `${each.app}-b` as App }]
    : [each];

async function main(): Promise<void> {
  const selected = [...THROUGHPUT, ...LATENCY].filter((each) => !ONLY || ONLY.test(each.name)).flatMap(twinOf);
  const full = !ONLY && !AB;
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const keyPrefix = `bench-peer-${randomBytes(4).toString('hex')}`;
  const db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
  const redis = new IORedis(REDIS_URL);
  // The MariaDB app's database, named as the schema.
  const maria = await createConnection(MARIADB_URL);
  const servers: Server[] = [];
  try {
    await db.query(`CREATE SCHEMA "${schema}"`);
    await db.query(`CREATE TABLE "${schema}".orders (id bigserial PRIMARY KEY, ref text NOT NULL, amount int NOT NULL)`);
    await db.query(`CREATE TABLE "${schema}".products (id int PRIMARY KEY, stock bigint NOT NULL)`);
    await db.query(`INSERT INTO "${schema}".products SELECT id, 1000000000 FROM generate_series(1, ${PRODUCTS}) AS id`);
    await db.query(`CREATE TABLE "${schema}".calibration AS SELECT 0::bigint AS commits`);
    await maria.query(`CREATE DATABASE \`${schema}\``);
    await maria.query(`CREATE TABLE \`${schema}\`.orders (id bigint AUTO_INCREMENT PRIMARY KEY, ref text NOT NULL, amount int NOT NULL)`);
    const env = { DATABASE_URL, REDIS_URL, SCHEMA: schema, POOL: String(POOL), KEY_PREFIX: keyPrefix, PRODUCTS: String(PRODUCTS) };
    const app = join(root, 'dist/bench/app.js');
    const other = AB ? otherBuild(AB, root) : undefined;
    const settings: Record<App, () => Promise<Server>> = {
      ours: () => start(app, env),
      uncached: () => start(app, { ...env, REPLAY_CACHE: 'off' }),
      // Store against store: the peer keeps no answers in process either.
      redis: () => start(app, { ...env, STORE: 'redis', REPLAY_CACHE: 'off' }),
      // Store against store: every replay reads MariaDB, as the PostgreSQL rows without the replay cache read PostgreSQL.
      mariadb: () => start(app, { ...env, ENGINE: 'mariadb', MARIADB_URL, REPLAY_CACHE: 'off' }),
      peer: () => (installPeer(peerFolder), start(join(peerFolder, 'app.js'), env)),
      peer12: () => (installPeer(join(peerFolder, 'nest12')), start(join(peerFolder, 'app.js'), { ...env, PEER_MODULES: join(peerFolder, 'nest12') })),
      'ours-b': () => start(other!, env),
      'uncached-b': () => start(other!, { ...env, REPLAY_CACHE: 'off' }),
      'redis-b': () => start(other!, { ...env, STORE: 'redis', REPLAY_CACHE: 'off', KEY_PREFIX: `${keyPrefix}-b` }),
    };
    const apps = [...new Set([...selected.map((each) => each.app), ...(full ? (['ours', 'mariadb'] as const) : [])])];
    const started = new Map<App, Server>();
    for (const name of apps) started.set(name, await settings[name]());
    servers.push(...started.values());
    const urlOf = (name: App) => started.get(name)!.url;

    const counters = async (name: App) =>
      isPeer(name)
        ? { statements: 0, cpuMicros: Number.NaN }
        : ((await (await fetch(`${urlOf(name)}/queries`)).json()) as { statements: number; cpuMicros: number });
    const redisCommands = async () => Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))![1]);
    const replayKeys = new Map<string, string[]>();
    const run = async (each: Scenario, duration = DURATION): Promise<Measured> => {
      const pid = started.get(each.app)!.process.pid!;
      const [before, redisBefore, cpuBefore] = [await counters(each.app), await redisCommands(), cpuTimes(pid)];
      const measured = await drive(urlOf(each.app), each, duration, replayKeys.get(`${each.app} ${each.path}`));
      const [after, redisAfter, cpuAfter] = [await counters(each.app), await redisCommands(), cpuTimes(pid)];
      const perRequest = (before: number, after: number) => (after - before) / measured.requests;
      return {
        ...measured,
        sql: perRequest(before.statements, after.statements),
        // Reading the counters costs Redis one command (INFO) of its own.
        redis: perRequest(redisBefore, redisAfter - 1),
        cpu: (({ app: appCpu, postgres, mariadb, redis: redisCpu }) => ({
          // The app's own count where it has one (bench/app.ts); the peer's from /proc.
          app: Number.isNaN(before.cpuMicros) ? appCpu / measured.requests : perRequest(before.cpuMicros, after.cpuMicros) / 1000,
          db: (each.app === 'mariadb' ? mariadb : postgres) / measured.requests,
          redis: redisCpu / measured.requests,
        }))(cpuBetween(cpuBefore, cpuAfter)),
      };
    };

    // Completed keys for the replay scenarios.
    for (const each of selected.filter((one) => one.keys === 'replay')) {
      if (replayKeys.has(`${each.app} ${each.path}`)) continue;
      const keys = Array.from({ length: 200 }, () => randomUUID());
      for (const key of keys) await post(urlOf(each.app), each.path, key, order('replay'));
      replayKeys.set(`${each.app} ${each.path}`, keys);
    }
    // A warm-up of every route, then the rounds.
    for (const each of selected) await run(each, 1);
    const rounds = new Map<Scenario, Measured[]>();
    // A scenario with its twin of an A/B run: they always run one right after the other.
    const units = selected.reduce<Scenario[][]>((all, each) => {
      if (each.app.endsWith('-b')) all[all.length - 1].push(each);
      else all.push([each]);
      return all;
    }, []);
    for (let round = 1; round <= ROUNDS; round++) {
      // Each round in an order of its own, so that no scenario always follows the same one (a database still busy
      // with the writes before it); in an A/B run, every other round drives the other build first.
      const inOrder = shuffled(units).flatMap((unit) => (round % 2 === 0 ? [...unit].reverse() : unit));
      for (const each of inOrder) {
        rounds.set(each, [...(rounds.get(each) ?? []), await run(each)]);
        process.stderr.write(`round ${round}/${ROUNDS}: ${each.name}\n`);
      }
    }
    const median = (each: Scenario) => {
      const sorted = [...rounds.get(each)!].sort((a, b) => a.reqPerSec - b.reqPerSec);
      return sorted[Math.floor(sorted.length / 2)];
    };
    const named = (name: string) => median(selected.find((each) => each.name === name)!);
    const ratioTo = (name: string) => (selected.some((each) => each.name === name) ? named(name).reqPerSec : Number.NaN);
    const rows = selected.map((each) => {
      const result = median(each);
      const one = each.connections === 1;
      const baseline = one ? `${NAMES.baseline}${ONE_CONNECTION}` : NAMES.baseline;
      const addedP50 = one && selected.some((s) => s.name === baseline) ? result.p50 - named(baseline).p50 : undefined;
      return { scenario: each.name, app: each.app, connections: each.connections, ...result, ratio: result.reqPerSec / ratioTo(baseline), addedP50 };
    });
    printTable(rows);
    const abRows = AB ? compareBuilds(selected, (each) => rounds.get(each)!) : [];
    if (AB) printAb(abRows, AB);
    if (!full && process.env.BENCH_HOT === '1' && started.has('ours')) {
      const count = async (ref: string) =>
        Number((await db.query<{ count: string }>(`SELECT count(*) FROM "${schema}".orders WHERE ref = $1`, [ref])).rows[0].count);
      printHotKey([await hot(urlOf('ours'), '/transaction', count), await hot(urlOf('ours'), '/wait', count)], POOL);
    }
    if (!full) {
      const file = join(tmpdir(), `bench-${AB ? 'ab' : 'only'}-${Date.now()}.json`);
      writeFileSync(
        file,
        `${JSON.stringify({ date: new Date().toISOString(), only: ONLY?.source, other: AB, settings: { DURATION, ROUNDS }, scenarios: rows, ab: abRows }, null, 2)}\n`,
      );
      console.log(`\nwritten: ${file}`);
      return;
    }

    const pgOrders = async (ref: string) =>
      Number((await db.query<{ count: string }>(`SELECT count(*) FROM "${schema}".orders WHERE ref = $1`, [ref])).rows[0].count);
    const mariaOrders = async (ref: string) => {
      const [found] = await maria.query(`SELECT count(*) AS count FROM \`${schema}\`.orders WHERE ref = ?`, [ref]);
      return Number((found as Array<{ count: number }>)[0].count);
    };
    const hotKey = [
      await hot(urlOf('ours'), '/transaction', pgOrders),
      await hot(urlOf('ours'), '/wait', pgOrders),
      await hot(urlOf('mariadb'), '/transaction', mariaOrders, 'MariaDB '),
      await hot(urlOf('mariadb'), '/wait', mariaOrders, 'MariaDB '),
    ];
    printHotKey(hotKey, POOL);
    const mariadbToPostgres = compareMariaDb(THROUGHPUT, LATENCY, median);
    printMariaDbComparison(mariadbToPostgres);
    const met = targets(named, hotKey);
    printTargets(met);
    const latencyModel = model(named);
    printModel(latencyModel);
    const results = {
      date: new Date().toISOString(),
      machine: {
        cpus: cpus().length,
        cpu: cpus()[0]?.model,
        node: process.version,
        postgres: (await db.query<{ server_version: string }>('SHOW server_version')).rows[0].server_version,
        mariadb: ((await maria.query('SELECT VERSION() AS version'))[0] as Array<{ version: string }>)[0].version,
      },
      settings: { durationSeconds: DURATION, rounds: ROUNDS, connections: CONNECTIONS, pool: POOL },
      targets: met,
      model: latencyModel,
      scenarios: rows,
      hotKey,
      peerRatioToItsBaseline: ratioTo(NAMES.peer) / ratioTo('peer: baseline (NestJS 10)'),
      // Store against store, both on Redis, neither keeping answers in process.
      ourRedisStoreToPeer: { firstRequests: ratioTo(NAMES.redis) / ratioTo(NAMES.peer), replays: ratioTo(NAMES.redisReplays) / ratioTo(NAMES.peerReplays) },
      // The same with the peer on NestJS 12, ours' framework; and each app's baseline on its own framework.
      ourRedisStoreToPeerOnNest12: {
        firstRequests: ratioTo(NAMES.redis) / ratioTo(NAMES.peer12),
        replays: ratioTo(NAMES.redisReplays) / ratioTo(NAMES.peer12Replays),
      },
      baselines: { nest12Pool: ratioTo(NAMES.redisBaseline), peerNest10: ratioTo('peer: baseline (NestJS 10)'), peerNest12: ratioTo(NAMES.peer12Baseline) },
      // The MySQL store on MariaDB against the PostgreSQL store, same route, same run: req/s of MariaDB / PostgreSQL.
      mariadbToPostgres,
    };
    writeFileSync(join(root, 'bench/results.json'), `${JSON.stringify(results, null, 2)}\n`);
    console.log('\nwritten: bench/results.json');
  } finally {
    for (const server of servers) server.process.kill('SIGTERM');
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.end();
    await maria.query(`DROP DATABASE IF EXISTS \`${schema}\``);
    await maria.end();
    // The peer and the Redis apps keep their records in the shared Redis under the run's prefix.
    for (const key of await redis.keys(`${keyPrefix}*`)) await redis.del(key);
    redis.disconnect();
  }
}

/** A copy of `items` in a random order (Fisher-Yates). */
function shuffled<T>(items: T[]): T[] {
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

/** The peer needs NestJS 10 (and, for the same framework as ours, 12): each gets its own node_modules, from its own lock file. */
main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
