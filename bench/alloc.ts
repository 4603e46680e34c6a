/**
 * What a request makes the app allocate, next to the same route without the library and next to the peer:
 * JS heap bytes (and how much of them lived long enough to be promoted to the old generation), promises and
 * timers per request. Counts, not timings (bench/alloc-meter.ts), so a change to the
 * request path shows its effect here even when the machine is too noisy for `npm run bench` to tell.
 *
 *   npm run bench:alloc                        (ALLOC_REQUESTS=3000 measured per scenario, after ALLOC_WARMUP=2000)
 *   BENCH_AB=<git ref> npm run bench:alloc     (this build's library against the ref's: bench/alloc-ab.ts)
 *
 * Starts the apps of `npm run bench` (ours on PostgreSQL, with and without the replay cache, ours on Redis, the
 * peer on NestJS 10 and 12) with the meter preloaded, and sends each scenario's requests 16 at a time.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { compareBuilds } from './alloc-ab';
import { type AllocScenario, CONCURRENCY, count, type Counted, REQUESTS, WARMUP, warmUp } from './alloc-window';
import { installPeer, type Server, start } from './driver';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

const root = join(__dirname, '../..');
const peerFolder = join(root, 'bench/peer');

type AllocApp = AllocScenario['app'];

const SCENARIOS: AllocScenario[] = [
  { name: 'baseline (no @Idempotent)', app: 'ours', path: '/baseline', keys: 'none' },
  { name: 'first requests, lease mode', app: 'ours', path: '/lease', keys: 'fresh', baseline: 'baseline (no @Idempotent)' },
  { name: 'first requests, transaction mode', app: 'ours', path: '/transaction', keys: 'fresh', baseline: 'baseline (no @Idempotent)' },
  { name: 'kept replays (replay cache)', app: 'ours', path: '/lease', keys: 'replay', baseline: 'baseline (no @Idempotent)' },
  { name: 'replays from the store', app: 'uncached', path: '/lease', keys: 'replay', baseline: 'baseline (no @Idempotent)' },
  { name: 'Redis app: baseline', app: 'redis', path: '/baseline', keys: 'none' },
  { name: 'Redis store: first requests', app: 'redis', path: '/lease', keys: 'fresh', baseline: 'Redis app: baseline' },
  { name: 'Redis store: replays', app: 'redis', path: '/lease', keys: 'replay', baseline: 'Redis app: baseline' },
  { name: 'peer: baseline (NestJS 10)', app: 'peer', path: '/baseline', keys: 'none' },
  { name: 'peer: first requests', app: 'peer', path: '/peer', keys: 'fresh', baseline: 'peer: baseline (NestJS 10)' },
  { name: 'peer: replays', app: 'peer', path: '/peer', keys: 'replay', baseline: 'peer: baseline (NestJS 10)' },
  { name: 'peer on NestJS 12: baseline', app: 'peer12', path: '/baseline', keys: 'none' },
  { name: 'peer on NestJS 12: first requests', app: 'peer12', path: '/peer', keys: 'fresh', baseline: 'peer on NestJS 12: baseline' },
  { name: 'peer on NestJS 12: replays', app: 'peer12', path: '/peer', keys: 'replay', baseline: 'peer on NestJS 12: baseline' },
];

/** What sets an app of ours apart in its environment. */
const OUR_APPS: Record<'ours' | 'uncached' | 'redis', Record<string, string>> = {
  ours: {},
  uncached: { REPLAY_CACHE: 'off' },
  redis: { STORE: 'redis', REPLAY_CACHE: 'off' },
};

async function main(): Promise<void> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const keyPrefix = `bench-alloc-${randomBytes(4).toString('hex')}`;
  const db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
  try {
    await db.query(`CREATE SCHEMA "${schema}"`);
    await db.query(`CREATE TABLE "${schema}".orders (id bigserial PRIMARY KEY, ref text NOT NULL, amount int NOT NULL)`);
    await db.query(`CREATE TABLE "${schema}".products (id int PRIMARY KEY, stock bigint NOT NULL)`);
    const env = { DATABASE_URL, REDIS_URL, SCHEMA: schema, POOL: '10', KEY_PREFIX: keyPrefix, PRODUCTS: '1' };
    const meter = join(root, 'dist/bench/alloc-meter.js');
    if (process.env.BENCH_AB) {
      const only = new RegExp(process.env.ALLOC_ONLY ?? '');
      const ours = SCENARIOS.filter((scenario) => scenario.app in OUR_APPS && only.test(scenario.name));
      // Each process writes its counts to a file of its own.
      const launch = async (entry: string, app: AllocApp, side: string, sideEnv: Record<string, string>) => {
        const out = join(tmpdir(), `${keyPrefix}-${app}-${side}.json`);
        const appEnv = { ...env, ...OUR_APPS[app as keyof typeof OUR_APPS], ...sideEnv, ALLOC_METER_OUT: out };
        return { server: await start(entry, appEnv, ['-r', meter]), out };
      };
      await compareBuilds(process.env.BENCH_AB, root, ours, launch);
      return;
    }
    print(await countAll(env, meter, keyPrefix));
  } finally {
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.end();
  }
}

/** Each scenario counted once, on its app started with the meter. */
async function countAll(env: Record<string, string>, meter: string, keyPrefix: string): Promise<Map<string, Counted>> {
  const out = (app: AllocApp) => join(tmpdir(), `${keyPrefix}-${app}.json`);
  const app = join(root, 'dist/bench/app.js');
  const peerApp = join(peerFolder, 'app.js');
  const settings: Record<AllocApp, () => Promise<Server>> = {
    ours: () => start(app, { ...env, ...OUR_APPS.ours, ALLOC_METER_OUT: out('ours') }, ['-r', meter]),
    uncached: () => start(app, { ...env, ...OUR_APPS.uncached, ALLOC_METER_OUT: out('uncached') }, ['-r', meter]),
    redis: () => start(app, { ...env, ...OUR_APPS.redis, ALLOC_METER_OUT: out('redis') }, ['-r', meter]),
    peer: () => (installPeer(peerFolder), start(peerApp, { ...env, ALLOC_METER_OUT: out('peer') }, ['-r', meter])),
    peer12: () => {
      const modules = join(peerFolder, 'nest12');
      installPeer(modules);
      return start(peerApp, { ...env, PEER_MODULES: modules, ALLOC_METER_OUT: out('peer12') }, ['-r', meter]);
    },
  };
  const started = new Map<AllocApp, Server>();
  const results = new Map<string, Counted>();
  try {
    for (const scenario of SCENARIOS) {
      let server = started.get(scenario.app);
      if (!server) {
        server = await settings[scenario.app]();
        started.set(scenario.app, server);
      }
      const replayKey = randomUUID();
      await warmUp(server, scenario, replayKey);
      results.set(scenario.name, await count(server, out(scenario.app), scenario, replayKey));
    }
  } finally {
    for (const server of started.values()) server.process.kill();
  }
  return results;
}

function print(results: Map<string, Counted>): void {
  console.log(`\nAllocated per request (${REQUESTS} requests after ${WARMUP} to warm up, ${CONCURRENCY} at a time); + is over the same app's baseline`);
  console.log('| scenario | JS heap KiB | + KiB | promoted KiB | + promoted | promises | + promises | timers | + timers |');
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const scenario of SCENARIOS) {
    const each = results.get(scenario.name)!;
    const base = scenario.baseline ? results.get(scenario.baseline) : undefined;
    const over = (value: number, baseline: number | undefined, digits: number) => {
      if (baseline === undefined) return '';
      const difference = value - baseline;
      return `${difference < 0 ? '' : '+'}${difference.toFixed(digits)}`;
    };
    console.log(
      `| ${scenario.name} | ${each.kib.toFixed(1)} | ${over(each.kib, base?.kib, 1)} | ${each.promotedKib.toFixed(1)} | ${over(each.promotedKib, base?.promotedKib, 1)} | ${each.promises.toFixed(1)} | ${over(each.promises, base?.promises, 1)} | ` +
        `${each.timers.toFixed(1)} | ${over(each.timers, base?.timers, 1)} |`,
    );
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
