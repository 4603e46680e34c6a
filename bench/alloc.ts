/**
 * What a request makes the app allocate, next to the same route without the library and next to the peer:
 * JS heap bytes (and how much of them lived long enough to be promoted to the old generation), promises and
 * timers per request. Counts, not timings (bench/alloc-meter.ts), so a change to the
 * request path shows its effect here even when the machine is too noisy for `npm run bench` to tell.
 *
 *   npm run bench:alloc        (ALLOC_REQUESTS=3000 measured per scenario, after ALLOC_WARMUP=2000)
 *
 * Starts the apps of `npm run bench` (ours on PostgreSQL, with and without the replay cache, ours on Redis, the
 * peer on NestJS 10 and 12) with the meter preloaded, and sends each scenario's requests 16 at a time.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { installPeer, type Keys, order, type Server, start } from './driver';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const REQUESTS = Number(process.env.ALLOC_REQUESTS ?? 3000);
const WARMUP = Number(process.env.ALLOC_WARMUP ?? 2000);
const CONCURRENCY = 16;

const root = join(__dirname, '../..');
const peerFolder = join(root, 'bench/peer');

type AllocApp = 'ours' | 'uncached' | 'redis' | 'peer' | 'peer12';
interface AllocScenario {
  name: string;
  app: AllocApp;
  path: string;
  keys: Keys;
  /** The scenario whose figures this one's are compared with: the same app without the library. */
  baseline?: string;
}

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

interface Counted {
  kib: number;
  promotedKib: number;
  promises: number;
  timers: number;
}

/** `count` requests of a scenario, CONCURRENCY at a time; each must succeed. */
async function send(url: string, scenario: AllocScenario, count: number, replayKey: string): Promise<void> {
  let sent = 0;
  const worker = async () => {
    while (sent < count) {
      sent++;
      const key = scenario.keys === 'replay' ? replayKey : randomUUID();
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (scenario.keys !== 'none') headers['idempotency-key'] = key;
      const response = await fetch(`${url}${scenario.path}`, { method: 'POST', headers, body: order(key) });
      await response.arrayBuffer();
      if (!response.ok) throw new Error(`${scenario.name}: ${scenario.path} answered ${response.status}`);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/** Toggles the meter in the app (SIGWINCH) and waits for what it wrote at the end of the window. */
async function measure(server: Server, out: string, work: () => Promise<void>): Promise<Counted> {
  rmSync(out, { force: true });
  server.process.kill('SIGWINCH');
  await work();
  server.process.kill('SIGWINCH');
  for (let waited = 0; !existsSync(out); waited += 50) {
    if (waited > 10_000) throw new Error('The allocation meter wrote nothing: was the app started with it?');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  const { allocated, promoted, created } = JSON.parse(readFileSync(out, 'utf8')) as { allocated: number; promoted: number; created: Record<string, number> };
  return {
    kib: allocated / 1024 / REQUESTS,
    promotedKib: promoted / 1024 / REQUESTS,
    promises: (created.PROMISE ?? 0) / REQUESTS,
    timers: ((created.Timeout ?? 0) + (created.Immediate ?? 0)) / REQUESTS,
  };
}

async function main(): Promise<void> {
  const schema = `bench_${randomBytes(4).toString('hex')}`;
  const keyPrefix = `bench-alloc-${randomBytes(4).toString('hex')}`;
  const db = new Client({ connectionString: DATABASE_URL });
  await db.connect();
  const servers: Server[] = [];
  try {
    await db.query(`CREATE SCHEMA "${schema}"`);
    await db.query(`CREATE TABLE "${schema}".orders (id bigserial PRIMARY KEY, ref text NOT NULL, amount int NOT NULL)`);
    await db.query(`CREATE TABLE "${schema}".products (id int PRIMARY KEY, stock bigint NOT NULL)`);
    const env = { DATABASE_URL, REDIS_URL, SCHEMA: schema, POOL: '10', KEY_PREFIX: keyPrefix, PRODUCTS: '1' };
    const meter = join(root, 'dist/bench/alloc-meter.js');
    const out = (app: AllocApp) => join(tmpdir(), `${keyPrefix}-${app}.json`);
    const app = join(root, 'dist/bench/app.js');
    const peerApp = join(peerFolder, 'app.js');
    const settings: Record<AllocApp, () => Promise<Server>> = {
      ours: () => start(app, { ...env, ALLOC_METER_OUT: out('ours') }, ['-r', meter]),
      uncached: () => start(app, { ...env, REPLAY_CACHE: 'off', ALLOC_METER_OUT: out('uncached') }, ['-r', meter]),
      redis: () => start(app, { ...env, STORE: 'redis', REPLAY_CACHE: 'off', ALLOC_METER_OUT: out('redis') }, ['-r', meter]),
      peer: () => (installPeer(peerFolder), start(peerApp, { ...env, ALLOC_METER_OUT: out('peer') }, ['-r', meter])),
      peer12: () => {
        const modules = join(peerFolder, 'nest12');
        installPeer(modules);
        return start(peerApp, { ...env, PEER_MODULES: modules, ALLOC_METER_OUT: out('peer12') }, ['-r', meter]);
      },
    };
    const started = new Map<AllocApp, Server>();
    const results = new Map<string, Counted>();
    for (const scenario of SCENARIOS) {
      let server = started.get(scenario.app);
      if (!server) {
        server = await settings[scenario.app]();
        servers.push(server);
        started.set(scenario.app, server);
      }
      const replayKey = randomUUID();
      // A replay's key is answered once first: its duplicates would be refused while it is in flight.
      if (scenario.keys === 'replay') await send(server.url, scenario, 1, replayKey);
      await send(server.url, scenario, WARMUP, replayKey);
      const url = server.url;
      results.set(scenario.name, await measure(server, out(scenario.app), () => send(url, scenario, REQUESTS, replayKey)));
    }
    print(results);
  } finally {
    for (const server of servers) server.process.kill();
    await db.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await db.end();
  }
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
