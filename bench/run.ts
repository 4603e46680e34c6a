/**
 * What nestjs-idempotency costs per request, next to the same route without it and next to a peer.
 *
 *   npm run bench        (BENCH_DURATION=5 seconds per run, BENCH_ROUNDS=3)
 *
 * Starts bench/app.ts (ours, on PostgreSQL, on Redis, and on MariaDB through the MySQL store) and
 * bench/peer/app.js (@node-idempotency/nestjs with its Redis adapter, installed in its own folder on first use)
 * as processes of their own, against the local PostgreSQL, MariaDB and Redis, and drives them with autocannon from this process. Throughput scenarios run in rounds,
 * interleaved, and report their median round, so that a noisy moment on a shared machine hits every
 * scenario alike; ratios are to the baseline of the same run. Prints a table and writes bench/results.json.
 */
import autocannon from 'autocannon';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createConnection } from 'mysql2/promise';
import { Client } from 'pg';
import IORedis from 'ioredis';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const MARIADB_URL = process.env.MARIADB_URL ?? 'mysql://root@127.0.0.1:3306';
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = 32;
const POOL = 10;
const HOT_KEY_REQUESTS = 1000;
const root = join(__dirname, '../..');
const peerFolder = join(root, 'bench/peer');

type Keys = 'none' | 'fresh' | 'replay';
/** Ours, ours without the replay cache, ours on the Redis store and on MariaDB (both without it too), and the peer. */
type App = 'ours' | 'uncached' | 'redis' | 'mariadb' | 'peer';

interface Scenario {
  name: string;
  app: App;
  path: string;
  keys: Keys;
  connections: number;
}

interface Measured {
  requests: number;
  reqPerSec: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
  /** Statements sent to the SQL database (PostgreSQL or MariaDB) or commands run by Redis (the peer's store) per request. */
  sql: number;
  redis: number;
  /** CPU time per request (ms): the app's process, the SQL database's processes (PostgreSQL's, or mariadbd), Redis. */
  cpu: { app: number; db: number; redis: number };
}

type CpuSnapshot = Map<number, { owner: 'app' | 'postgres' | 'mariadb' | 'redis'; ms: number }>;

interface Server {
  url: string;
  process: ChildProcess;
}

const order = (ref: string) => JSON.stringify({ ref, amount: 100 });

async function main(): Promise<void> {
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
    await maria.query(`CREATE DATABASE \`${schema}\``);
    await maria.query(`CREATE TABLE \`${schema}\`.orders (id bigint AUTO_INCREMENT PRIMARY KEY, ref text NOT NULL, amount int NOT NULL)`);
    installPeer();
    const env = { DATABASE_URL, REDIS_URL, SCHEMA: schema, POOL: String(POOL), KEY_PREFIX: keyPrefix };
    const ours = await start(join(root, 'dist/bench/app.js'), env);
    const uncached = await start(join(root, 'dist/bench/app.js'), { ...env, REPLAY_CACHE: 'off' });
    // Store against store: the peer keeps no answers in process either.
    const redisStore = await start(join(root, 'dist/bench/app.js'), { ...env, STORE: 'redis', REPLAY_CACHE: 'off' });
    // Store against store: every replay reads MariaDB, as the PostgreSQL rows without the replay cache read PostgreSQL.
    const mariadb = await start(join(root, 'dist/bench/app.js'), { ...env, ENGINE: 'mariadb', MARIADB_URL, REPLAY_CACHE: 'off' });
    const peer = await start(join(peerFolder, 'app.js'), env);
    servers.push(ours, uncached, redisStore, mariadb, peer);
    const urls: Record<App, string> = { ours: ours.url, uncached: uncached.url, redis: redisStore.url, mariadb: mariadb.url, peer: peer.url };

    const statements = async (app: App) => (app === 'peer' ? 0 : ((await (await fetch(`${urls[app]}/queries`)).json()) as { statements: number }).statements);
    const redisCommands = async () => Number(/total_commands_processed:(\d+)/.exec(await redis.info('stats'))![1]);
    const replayKeys = new Map<string, string[]>();
    const pids: Record<App, number> = {
      ours: ours.process.pid!,
      uncached: uncached.process.pid!,
      redis: redisStore.process.pid!,
      mariadb: mariadb.process.pid!,
      peer: peer.process.pid!,
    };
    const run = async (scenario: Scenario, duration = DURATION): Promise<Measured> => {
      const [pgBefore, redisBefore, cpuBefore] = [await statements(scenario.app), await redisCommands(), cpuTimes(pids[scenario.app])];
      const measured = await drive(urls[scenario.app], scenario, duration, replayKeys.get(`${scenario.app} ${scenario.path}`));
      const [pgAfter, redisAfter, cpuAfter] = [await statements(scenario.app), await redisCommands(), cpuTimes(pids[scenario.app])];
      const perRequest = (before: number, after: number) => (after - before) / measured.requests;
      return {
        ...measured,
        sql: perRequest(pgBefore, pgAfter),
        // Reading the counters costs Redis one command (INFO) of its own.
        redis: perRequest(redisBefore, redisAfter - 1),
        cpu: (({ app, postgres, mariadb, redis }) => ({
          app: app / measured.requests,
          db: (scenario.app === 'mariadb' ? mariadb : postgres) / measured.requests,
          redis: redis / measured.requests,
        }))(cpuBetween(cpuBefore, cpuAfter)),
      };
    };

    // Completed keys for the replay scenarios, and a warm-up of every route.
    for (const [app, path] of [
      ['ours', '/lease'],
      ['ours', '/transaction'],
      ['uncached', '/lease'],
      ['uncached', '/transaction'],
      ['redis', '/lease'],
      ['mariadb', '/lease'],
      ['mariadb', '/transaction'],
      ['peer', '/peer'],
    ] as const) {
      const keys = Array.from({ length: 200 }, () => randomUUID());
      for (const key of keys) await post(urls[app], path, key, order('replay'));
      replayKeys.set(`${app} ${path}`, keys);
    }
    const throughput: Scenario[] = [
      { name: 'baseline (no @Idempotent)', app: 'ours', path: '/baseline', keys: 'none', connections: CONNECTIONS },
      { name: 'first requests, lease mode', app: 'ours', path: '/lease', keys: 'fresh', connections: CONNECTIONS },
      { name: 'first requests, transaction mode', app: 'ours', path: '/transaction', keys: 'fresh', connections: CONNECTIONS },
      { name: 'replays, lease mode', app: 'ours', path: '/lease', keys: 'replay', connections: CONNECTIONS },
      { name: 'replays, transaction mode', app: 'ours', path: '/transaction', keys: 'replay', connections: CONNECTIONS },
      { name: 'replays, lease mode, replayCache: false', app: 'uncached', path: '/lease', keys: 'replay', connections: CONNECTIONS },
      { name: 'replays, transaction mode, replayCache: false', app: 'uncached', path: '/transaction', keys: 'replay', connections: CONNECTIONS },
      { name: 'MariaDB: baseline (no @Idempotent)', app: 'mariadb', path: '/baseline', keys: 'none', connections: CONNECTIONS },
      { name: 'MariaDB: first requests, lease mode', app: 'mariadb', path: '/lease', keys: 'fresh', connections: CONNECTIONS },
      { name: 'MariaDB: first requests, transaction mode', app: 'mariadb', path: '/transaction', keys: 'fresh', connections: CONNECTIONS },
      { name: 'MariaDB: replays, lease mode, replayCache: false', app: 'mariadb', path: '/lease', keys: 'replay', connections: CONNECTIONS },
      { name: 'MariaDB: replays, transaction mode, replayCache: false', app: 'mariadb', path: '/transaction', keys: 'replay', connections: CONNECTIONS },
      { name: 'Redis store: first requests, lease mode', app: 'redis', path: '/lease', keys: 'fresh', connections: CONNECTIONS },
      { name: 'Redis store: replays, replayCache: false', app: 'redis', path: '/lease', keys: 'replay', connections: CONNECTIONS },
      { name: 'peer: baseline (NestJS 10)', app: 'peer', path: '/baseline', keys: 'none', connections: CONNECTIONS },
      { name: 'peer: first requests (Redis)', app: 'peer', path: '/peer', keys: 'fresh', connections: CONNECTIONS },
      { name: 'peer: replays (Redis)', app: 'peer', path: '/peer', keys: 'replay', connections: CONNECTIONS },
    ];
    const latency: Scenario[] = throughput
      .filter((scenario) => scenario.app !== 'peer')
      .map((scenario) => ({ ...scenario, name: `${scenario.name}, 1 connection`, connections: 1 }));
    for (const scenario of [...throughput, ...latency]) await run(scenario, 1);

    const rounds = new Map<Scenario, Measured[]>();
    for (let round = 1; round <= ROUNDS; round++) {
      for (const scenario of [...throughput, ...latency]) {
        rounds.set(scenario, [...(rounds.get(scenario) ?? []), await run(scenario)]);
        process.stderr.write(`round ${round}/${ROUNDS}: ${scenario.name}\n`);
      }
    }
    const median = (scenario: Scenario) => {
      const sorted = [...rounds.get(scenario)!].sort((a, b) => a.reqPerSec - b.reqPerSec);
      return sorted[Math.floor(sorted.length / 2)];
    };
    const pgOrders = async (ref: string) =>
      Number((await db.query<{ count: string }>(`SELECT count(*) FROM "${schema}".orders WHERE ref = $1`, [ref])).rows[0].count);
    const mariaOrders = async (ref: string) => {
      const [rows] = await maria.query(`SELECT count(*) AS count FROM \`${schema}\`.orders WHERE ref = ?`, [ref]);
      return Number((rows as Array<{ count: number }>)[0].count);
    };
    const hotKey = [
      await hot(ours.url, '/transaction', pgOrders),
      await hot(ours.url, '/wait', pgOrders),
      await hot(mariadb.url, '/transaction', mariaOrders, 'MariaDB '),
      await hot(mariadb.url, '/wait', mariaOrders, 'MariaDB '),
    ];

    const baseline = median(throughput[0]);
    const peerBaseline = median(throughput.find((scenario) => scenario.app === 'peer' && scenario.keys === 'none')!);
    const baselineLatency = median(latency[0]);
    const rows = [
      ...throughput.map((scenario) => {
        const result = median(scenario);
        return { scenario: scenario.name, app: scenario.app, connections: scenario.connections, ...result, ratio: result.reqPerSec / baseline.reqPerSec };
      }),
      ...latency.map((scenario) => {
        const result = median(scenario);
        return {
          scenario: scenario.name,
          app: scenario.app,
          connections: 1,
          ...result,
          ratio: result.reqPerSec / baselineLatency.reqPerSec,
          addedP50: result.p50 - baselineLatency.p50,
        };
      }),
    ];
    printTable(rows);
    printHotKey(hotKey);
    const ratioOf = (app: App, keys: Scenario['keys']) => median(throughput.find((scenario) => scenario.app === app && scenario.keys === keys)!).reqPerSec;
    const mariadbToPostgres = compareMariaDb(throughput, latency, median);
    printMariaDbComparison(mariadbToPostgres);
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
      scenarios: rows,
      hotKey,
      peerRatioToItsBaseline: median(throughput.find((scenario) => scenario.app === 'peer' && scenario.keys === 'fresh')!).reqPerSec / peerBaseline.reqPerSec,
      // Store against store, both on Redis, neither keeping answers in process.
      ourRedisStoreToPeer: {
        firstRequests: ratioOf('redis', 'fresh') / ratioOf('peer', 'fresh'),
        replays: ratioOf('redis', 'replay') / ratioOf('peer', 'replay'),
      },
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
    // The peer keeps its records in the shared Redis under its prefix.
    for (const key of await redis.keys(`${keyPrefix}*`)) await redis.del(key);
    redis.disconnect();
  }
}

/** One run of autocannon; latencies are kept from each response (autocannon's own histogram keeps whole ms). */
async function drive(url: string, scenario: Scenario, duration: number, replayKeys: string[] = []): Promise<Omit<Measured, 'sql' | 'redis' | 'cpu'>> {
  const latencies: number[] = [];
  let next = 0;
  const result = await launch(
    {
      url: `${url}${scenario.path}`,
      connections: scenario.connections,
      duration,
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(scenario.keys === 'fresh' ? { 'idempotency-key': '[<id>]' } : {}) },
      body: scenario.keys === 'replay' ? order('replay') : order('[<id>]'),
      idReplacement: scenario.keys !== 'replay',
      requests:
        scenario.keys === 'replay'
          ? [{ setupRequest: (request) => ({ ...request, headers: { ...request.headers, 'idempotency-key': replayKeys[next++ % replayKeys.length] } }) }]
          : undefined,
    },
    (_status, responseTime) => latencies.push(responseTime),
  );
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
  const requests = result.requests.total;
  return { requests, reqPerSec: requests / result.duration, p50: at(0.5), p99: at(0.99), non2xx: result.non2xx, errors: result.errors + result.timeouts };
}

/** A thousand concurrent duplicates of one new key, each on its own connection, against a pool of 10. */
async function hot(url: string, path: string, executionsOf: (ref: string) => Promise<number>, label = '') {
  const key = randomUUID();
  const statuses: Record<string, number> = {};
  const startedAt = performance.now();
  const result = await launch(
    {
      url: `${url}${path}`,
      connections: HOT_KEY_REQUESTS,
      amount: HOT_KEY_REQUESTS,
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: order(key),
      timeout: 30,
    },
    (status) => (statuses[status] = (statuses[status] ?? 0) + 1),
  );
  const seconds = (performance.now() - startedAt) / 1000;
  const executions = await executionsOf(key);
  return {
    route: `${label}${path}`,
    requests: HOT_KEY_REQUESTS,
    answered: result.requests.total,
    seconds,
    executions,
    statuses,
    errors: result.errors + result.timeouts,
  };
}

/**
 * CPU time used so far (ms) by the app's process, each PostgreSQL process and Redis, from /proc: where a
 * scenario's cost goes, on a machine whose cores the load generator shares. Empty where /proc is absent.
 */
function cpuTimes(appPid: number): CpuSnapshot {
  const snapshot: CpuSnapshot = new Map();
  if (!existsSync('/proc/self/stat')) return snapshot;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // Ended meanwhile.
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const owners: Record<string, 'postgres' | 'mariadb' | 'redis'> = { postgres: 'postgres', mariadbd: 'mariadb', 'redis-server': 'redis' };
    const owner = Number(entry) === appPid ? 'app' : owners[name];
    // utime + stime, in ticks of 10 ms (USER_HZ is 100 on Linux).
    if (owner) snapshot.set(Number(entry), { owner, ms: (Number(fields[11]) + Number(fields[12])) * 10 });
  }
  return snapshot;
}

/** CPU used between two snapshots; a process that ended meanwhile is left out (its time is lost with it). */
function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): { app: number; postgres: number; mariadb: number; redis: number } {
  const used = { app: 0, postgres: 0, mariadb: 0, redis: 0 };
  for (const [pid, { owner, ms }] of after) used[owner] += ms - (before.get(pid)?.ms ?? 0);
  return used;
}

function launch(options: autocannon.Options, onResponse: (status: number, responseTime: number) => void): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(options, (error: Error | null, result: autocannon.Result) => (error ? reject(error) : resolve(result)));
    instance.on('response', (_client: unknown, status: number, _bytes: number, responseTime: number) => onResponse(status, responseTime));
  });
}

async function post(url: string, path: string, key: string, body: string): Promise<void> {
  const response = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body });
  if (!response.ok) throw new Error(`${path} answered ${response.status}: ${await response.text()}`);
}

/** The peer needs NestJS 10: it gets its own node_modules, from its own lock file. */
function installPeer(): void {
  if (existsSync(join(peerFolder, 'node_modules/@node-idempotency/nestjs'))) return;
  console.error('Installing the peer (@node-idempotency/nestjs) in bench/peer ...');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: peerFolder, stdio: 'inherit' });
}

async function start(entry: string, env: Record<string, string>): Promise<Server> {
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run "npm run build" first.`);
  const child = spawn(process.execPath, [entry], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening (\d+)/.exec(output);
      if (match) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`${entry} exited with ${code}: ${output}`)));
  });
  return { url: `http://127.0.0.1:${port}`, process: child };
}

type Row = Measured & { scenario: string; app: App; connections: number; ratio: number; addedP50?: number };

function printTable(rows: Row[]): void {
  const header = [
    'scenario',
    'conns',
    'req/s',
    'ratio to our baseline',
    'p50 ms',
    'p99 ms',
    'added p50',
    'SQL/req',
    'Redis/req',
    'CPU ms/req app+DB+Redis',
    'non-2xx',
  ];
  const cells = rows.map((row) => [
    row.scenario,
    String(row.connections),
    row.reqPerSec.toFixed(0),
    `${row.ratio.toFixed(2)}x`,
    row.p50.toFixed(2),
    row.p99.toFixed(2),
    row.addedP50 === undefined ? '' : `${row.addedP50 >= 0 ? '+' : ''}${row.addedP50.toFixed(2)} ms`,
    row.app === 'peer' ? 'not counted' : row.sql.toFixed(2),
    row.redis.toFixed(2),
    `${row.cpu.app.toFixed(2)} + ${row.cpu.db.toFixed(2)} + ${row.cpu.redis.toFixed(2)}`,
    String(row.non2xx + row.errors),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((cell) => cell[column].length)));
  const line = (cell: string[]) => `| ${cell.map((value, column) => value.padEnd(widths[column])).join(' | ')} |`;
  console.log(`\n${line(header)}\n| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`);
  for (const cell of cells) console.log(line(cell));
}

function printHotKey(results: Array<Awaited<ReturnType<typeof hot>>>): void {
  console.log(`\nHot key: ${HOT_KEY_REQUESTS} concurrent duplicates of one key, pool of ${POOL}`);
  for (const result of results) {
    const statuses = Object.entries(result.statuses)
      .map(([status, count]) => `${count}x${status}`)
      .join(', ');
    console.log(`  ${result.route}: all answered in ${result.seconds.toFixed(2)} s, ${result.executions} execution(s), ${statuses}, ${result.errors} errors`);
  }
}

/** The PostgreSQL row each MariaDB row is compared with: the same route and keys, the replay cache off for replays on both. */
const POSTGRES_TWIN: Record<string, string> = {
  'MariaDB: baseline (no @Idempotent)': 'baseline (no @Idempotent)',
  'MariaDB: first requests, lease mode': 'first requests, lease mode',
  'MariaDB: first requests, transaction mode': 'first requests, transaction mode',
  'MariaDB: replays, lease mode, replayCache: false': 'replays, lease mode, replayCache: false',
  'MariaDB: replays, transaction mode, replayCache: false': 'replays, transaction mode, replayCache: false',
};

interface MariaDbComparison {
  scenario: string;
  connections: number;
  mariadbReqPerSec: number;
  postgresReqPerSec: number;
  /** MariaDB's req/s over PostgreSQL's. */
  toPostgres: number;
  /** Each store's req/s over its own engine's baseline. */
  mariadbToItsBaseline: number;
  postgresToItsBaseline: number;
}

function compareMariaDb(throughput: Scenario[], latency: Scenario[], median: (scenario: Scenario) => Measured): MariaDbComparison[] {
  const comparisons: MariaDbComparison[] = [];
  for (const [scenarios, suffix] of [
    [throughput, ''],
    [latency, ', 1 connection'],
  ] as const) {
    const named = (name: string) => scenarios.find((scenario) => scenario.name === `${name}${suffix}`)!;
    const mariadbBaseline = median(named('MariaDB: baseline (no @Idempotent)')).reqPerSec;
    const postgresBaseline = median(named('baseline (no @Idempotent)')).reqPerSec;
    for (const [mariadb, postgres] of Object.entries(POSTGRES_TWIN)) {
      const ours = median(named(mariadb));
      const theirs = median(named(postgres));
      comparisons.push({
        scenario: `${mariadb.replace('MariaDB: ', '')}${suffix}`,
        connections: named(mariadb).connections,
        mariadbReqPerSec: ours.reqPerSec,
        postgresReqPerSec: theirs.reqPerSec,
        toPostgres: ours.reqPerSec / theirs.reqPerSec,
        mariadbToItsBaseline: ours.reqPerSec / mariadbBaseline,
        postgresToItsBaseline: theirs.reqPerSec / postgresBaseline,
      });
    }
  }
  return comparisons;
}

function printMariaDbComparison(comparisons: MariaDbComparison[]): void {
  console.log('\nMariaDB (MySQL store) against PostgreSQL, same run: req/s, MariaDB / PostgreSQL, each over its own baseline');
  for (const row of comparisons) {
    console.log(
      `  ${row.scenario}: ${row.mariadbReqPerSec.toFixed(0)} vs ${row.postgresReqPerSec.toFixed(0)} req/s = ${row.toPostgres.toFixed(2)}x; ` +
        `to own baseline ${row.mariadbToItsBaseline.toFixed(2)}x vs ${row.postgresToItsBaseline.toFixed(2)}x`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
