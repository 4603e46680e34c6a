/**
 * One measured window of `npm run bench:alloc`: a scenario's requests sent to an app started with the meter
 * (bench/alloc-meter.ts), and what the meter counted, or the CPU time the app spent, per request.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { type Keys, order, type Server } from './driver';

export const REQUESTS = Number(process.env.ALLOC_REQUESTS ?? 3000);
export const WARMUP = Number(process.env.ALLOC_WARMUP ?? 2000);
export const CONCURRENCY = 16;

export interface AllocScenario {
  name: string;
  app: 'ours' | 'uncached' | 'redis' | 'peer' | 'peer12';
  path: string;
  keys: Keys;
  /** The scenario whose figures this one's are compared with: the same app without the library. */
  baseline?: string;
}

export interface Counted {
  kib: number;
  promotedKib: number;
  promises: number;
  timers: number;
}

/** `count` requests of a scenario, CONCURRENCY at a time; each must succeed. */
export async function send(url: string, scenario: AllocScenario, count: number, replayKey: string): Promise<void> {
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

/** Warms a scenario up; a replay's key is answered once first, as its duplicates would be refused while it is in flight. */
export async function warmUp(server: Server, scenario: AllocScenario, replayKey: string): Promise<void> {
  if (scenario.keys === 'replay') await send(server.url, scenario, 1, replayKey);
  await send(server.url, scenario, WARMUP, replayKey);
}

/** REQUESTS requests with the meter on (SIGWINCH toggles it in the app), and what it counted per request. */
export async function count(server: Server, out: string, scenario: AllocScenario, replayKey: string): Promise<Counted> {
  rmSync(out, { force: true });
  server.process.kill('SIGWINCH');
  await send(server.url, scenario, REQUESTS, replayKey);
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

/** REQUESTS requests with the meter off, and the app's CPU time per request in µs (its `GET /queries`). */
export async function cpuPerRequest(server: Server, scenario: AllocScenario, replayKey: string): Promise<number> {
  const cpu = async () => ((await (await fetch(`${server.url}/queries`)).json()) as { cpuMicros: number }).cpuMicros;
  const before = await cpu();
  await send(server.url, scenario, REQUESTS, replayKey);
  return ((await cpu()) - before) / REQUESTS;
}
