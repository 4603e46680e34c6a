/**
 * How `npm run bench` drives an app and measures it: autocannon runs, the hot key, CPU time from /proc, and the
 * app processes themselves.
 */
import autocannon from 'autocannon';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export const HOT_KEY_REQUESTS = 1000;

export type Keys = 'none' | 'fresh' | 'replay';

/** The app processes (see run.ts); `-b` ones run the other build of an A/B run (BENCH_AB). */
export type App = 'ours' | 'uncached' | 'redis' | 'mariadb' | 'peer' | 'peer12' | 'ours-b' | 'uncached-b' | 'redis-b';

/** The peer's apps, which count neither statements nor their own CPU (bench/peer/app.js). */
export const isPeer = (app: App) => app === 'peer' || app === 'peer12';

export interface Scenario {
  name: string;
  app: App;
  path: string;
  keys: Keys;
  connections: number;
}

export interface Measured {
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

export interface Server {
  url: string;
  process: ChildProcess;
}

export const order = (ref: string) => JSON.stringify({ ref, amount: 100 });

/** One run of autocannon; latencies are kept from each response (autocannon's own histogram keeps whole ms). */
export async function drive(url: string, scenario: Scenario, duration: number, replayKeys: string[] = []): Promise<Omit<Measured, 'sql' | 'redis' | 'cpu'>> {
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
export async function hot(url: string, path: string, executionsOf: (ref: string) => Promise<number>, label = '') {
  const key = randomUUID();
  const statuses: Record<string, number> = {};
  const startedAt = performance.now();
  // Timed to the last answer: autocannon itself ends only on its next one-second sample tick.
  let lastAnswer = startedAt;
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
    (status) => {
      statuses[status] = (statuses[status] ?? 0) + 1;
      lastAnswer = performance.now();
    },
  );
  const seconds = (lastAnswer - startedAt) / 1000;
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
export function cpuTimes(appPid: number): CpuSnapshot {
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
export function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): { app: number; postgres: number; mariadb: number; redis: number } {
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

export async function post(url: string, path: string, key: string, body: string): Promise<void> {
  const response = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body });
  if (!response.ok) throw new Error(`${path} answered ${response.status}: ${await response.text()}`);
}

/** Starts an app (bench/app.ts, or the peer's) and waits for the port it prints. */
export async function start(entry: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Server> {
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run "npm run build" first.`);
  const child = spawn(process.execPath, [...nodeArgs, entry], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
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

/** The peer's packages, installed in their own folder (bench/peer, bench/peer/nest12) on first use. */
export function installPeer(folder: string): void {
  if (existsSync(join(folder, 'node_modules/@node-idempotency/nestjs'))) return;
  console.error(`Installing the peer (@node-idempotency/nestjs) in ${folder} ...`);
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: folder, stdio: 'inherit' });
}
