/**
 * `BENCH_AB=<git ref> npm run bench:alloc`: this checkout's library against the ref's (built as bench/ab.ts builds
 * it), in the same bench app, on the scenarios of our own apps. Both sides count one window each (bytes, promoted
 * bytes, promises, timers: counts that repeat from run to run), then take turns, in alternating order, for
 * ALLOC_AB_ROUNDS windows of the app's CPU time per request with the meter off. The CPU ratio is the median of the
 * rounds' ratios, each between two windows run one after the other, so that the machine's load, which drifts, weighs
 * on both alike. ALLOC_ONLY=<regex> picks scenarios by name; ALLOC_AB_ENV=NAME=value,... is set for the other side
 * only (ALLOC_AB_ENV=ADAPTER=fastify: the app on Fastify against Express). Run it with the same build on both sides
 * (`BENCH_AB=HEAD` on a clean checkout) to see what is noise.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { otherBuild } from './ab';
import { type AllocScenario, count, type Counted, cpuPerRequest, REQUESTS, warmUp } from './alloc-window';
import type { Server } from './driver';

const ROUNDS = Number(process.env.ALLOC_AB_ROUNDS ?? 12);

type Launch = (entry: string, app: AllocScenario['app'], side: string, env: Record<string, string>) => Promise<{ server: Server; out: string }>;

interface Side {
  label: string;
  entry: string;
  env: Record<string, string>;
  apps: Map<string, { server: Server; out: string }>;
}

interface Measured {
  counted: Counted[];
  cpu: number[][];
}

export async function compareBuilds(ref: string, root: string, scenarios: AllocScenario[], launch: Launch): Promise<void> {
  const setting = process.env.ALLOC_AB_ENV ?? '';
  const env = Object.fromEntries(
    setting
      .split(',')
      .filter(Boolean)
      .map((pair) => pair.split('=', 2) as [string, string]),
  );
  const sides: Side[] = [
    { label: 'this', entry: join(root, 'dist/bench/app.js'), env: {}, apps: new Map() },
    { label: setting ? `${ref} with ${setting}` : ref, entry: otherBuild(ref, root), env, apps: new Map() },
  ];
  const results = new Map<string, Measured>();
  try {
    for (const scenario of scenarios) {
      const replayKey = randomUUID();
      const measured: Measured = { counted: [], cpu: [[], []] };
      for (const [index, side] of sides.entries()) {
        if (!side.apps.has(scenario.app)) side.apps.set(scenario.app, await launch(side.entry, scenario.app, `side${index}`, side.env));
        const { server, out } = side.apps.get(scenario.app)!;
        await warmUp(server, scenario, replayKey);
        measured.counted.push(await count(server, out, scenario, replayKey));
      }
      for (let round = 0; round < ROUNDS; round++) {
        for (const index of round % 2 === 0 ? [0, 1] : [1, 0]) {
          measured.cpu[index].push(await cpuPerRequest(sides[index].apps.get(scenario.app)!.server, scenario, replayKey));
        }
      }
      results.set(scenario.name, measured);
      console.error(`${scenario.name}: done`);
    }
  } finally {
    for (const side of sides) for (const { server } of side.apps.values()) server.process.kill();
  }
  print(sides[1].label, results);
}

function print(other: string, results: Map<string, Measured>): void {
  console.log(`\nThis build / ${other}, per request (${REQUESTS} requests a window; CPU: µs, median of ${ROUNDS} windows each; ratio: median of the rounds')`);
  console.log("| scenario | JS heap KiB | promoted KiB | promises | timers | app CPU µs | CPU ratio | rounds' ratios |");
  console.log('| --- | --- | --- | --- | --- | --- | --- | --- |');
  for (const [name, { counted, cpu }] of results) {
    const [a, b] = counted;
    const pair = (x: number, y: number, digits: number) => `${x.toFixed(digits)} / ${y.toFixed(digits)}`;
    const ratios = cpu[0].map((x, round) => x / cpu[1][round]);
    const rounds = [...ratios]
      .sort((x, y) => x - y)
      .map((x) => x.toFixed(2))
      .join(' ');
    console.log(
      `| ${name} | ${pair(a.kib, b.kib, 1)} | ${pair(a.promotedKib, b.promotedKib, 1)} | ${pair(a.promises, b.promises, 1)} | ${pair(a.timers, b.timers, 1)} | ` +
        `${pair(median(cpu[0]), median(cpu[1]), 0)} | ${median(ratios).toFixed(3)}x | ${rounds} |`,
    );
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}
