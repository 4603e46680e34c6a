/**
 * The figures of the performance issue's targets, read off one run: each ratio from medians of the same run, the
 * model of the added latency at one connection, and the A/B comparison of two builds run side by side.
 */
import type { hot, Measured, Scenario } from './driver';

/** Scenario names the targets read; run.ts names its scenarios with these. */
export const NAMES = {
  baseline: 'baseline (no @Idempotent)',
  lease: 'first requests, lease mode',
  transaction: 'first requests, transaction mode',
  leaseFloor: 'floor: first requests, lease mode by hand (claim, INSERT, completion)',
  transactionFloor: 'floor: first requests, transaction mode by hand (BEGIN, claim, INSERT, completion, COMMIT)',
  shop: 'realistic: 3 statements in a transaction, without the library',
  shopIdempotent: 'realistic: 3 statements in a transaction, transaction: true',
  shopFloor: 'floor: realistic, by hand (BEGIN, claim, 3 statements, completion, COMMIT)',
  keptReplays: 'replays, lease mode',
  storeReplays: 'replays, lease mode, replayCache: false',
  redisBaseline: 'Redis app: baseline (no @Idempotent; INSERT on the pool, as the peer)',
  redis: 'Redis store: first requests, lease mode',
  redisReplays: 'Redis store: replays, replayCache: false',
  redisFloor: 'Redis floor: first requests by hand (the same scripts, INSERT)',
  peer: 'peer: first requests (Redis)',
  peerReplays: 'peer: replays (Redis)',
  peer12Baseline: 'peer on NestJS 12: baseline',
  peer12: 'peer on NestJS 12: first requests (Redis)',
  peer12Replays: 'peer on NestJS 12: replays (Redis)',
  ceiling: 'ceiling: a route without I/O or the library',
  interceptedCeiling: 'ceiling: the same behind an interceptor that passes through',
  selectCeiling: 'ceiling: one SELECT 1 round trip, without the library',
  calibrateNone: 'calibration: a route without I/O',
  calibrateSelect: 'calibration: SELECT 1 (one round trip)',
  calibrateCommit: 'calibration: a commit that flushes (UPDATE of a one-row table)',
} as const;

export const ONE_CONNECTION = ', 1 connection';

export interface Target {
  measure: string;
  value: string;
  target: string;
  met: boolean;
}

type Median = (name: string) => Measured;
type HotKey = Awaited<ReturnType<typeof hot>>;

/**
 * What a target's ratio is shown beside: the same ratio for a route of no more I/O, without the library (a bound),
 * and for the route without I/O behind an interceptor that passes through (what Nest's chain costs any interceptor).
 */
const BOUNDS = {
  'its statements by hand': NAMES.shopFloor,
  'one SELECT 1 by hand': NAMES.selectCeiling,
  'a route without I/O': NAMES.ceiling,
  'behind a pass-through interceptor': NAMES.interceptedCeiling,
} as const;

export function targets(median: Median, hotKey: HotKey[]): Target[] {
  const rate = (name: string) => median(name).reqPerSec;
  const ratio = (measure: string, a: string, b: string, at: number, bounds: Array<keyof typeof BOUNDS> = []): Target => {
    const value = rate(a) / rate(b);
    // What the same ratio is for each bound: the same I/O by hand, or for a replay, a route doing only its own I/O.
    const most = bounds.map((bound) => `${bound}: ${(rate(BOUNDS[bound]) / rate(b)).toFixed(2)}x`).join('; ');
    return { measure, value: `${value.toFixed(2)}x${most && ` (${most})`}`, target: `>= ${at.toFixed(1)}x`, met: value >= at };
  };
  // Over the Redis app's own baseline: its business INSERT goes to the pool directly, not through TypeORM.
  const cpu = median(NAMES.redis).cpu.app - median(NAMES.redisBaseline).cpu.app;
  const floorCpu = median(NAMES.redisFloor).cpu.app - median(NAMES.redisBaseline).cpu.app;
  const signed = (ms: number) => `${ms >= 0 ? '+' : ''}${ms.toFixed(2)} ms`;
  const postgresHot = hotKey.filter((result) => !result.route.startsWith('MariaDB'));
  const slowest = Math.max(...postgresHot.map((result) => result.seconds));
  return [
    ratio('our Redis store / peer, first requests', NAMES.redis, NAMES.peer, 1),
    ratio('our Redis store / peer, replays without replay cache', NAMES.redisReplays, NAMES.peerReplays, 1),
    // The same, with the peer on our framework (NestJS 12 on Express 5): what is left is the libraries' own difference.
    ratio('our Redis store / peer on NestJS 12, first requests', NAMES.redis, NAMES.peer12, 1),
    ratio('our Redis store / peer on NestJS 12, replays without replay cache', NAMES.redisReplays, NAMES.peer12Replays, 1),
    ratio('lease mode / its floor (same SQL by hand)', NAMES.lease, NAMES.leaseFloor, 0.9),
    ratio('transaction mode / its floor', NAMES.transaction, NAMES.transactionFloor, 0.9),
    ratio('realistic 3-statement handler, transaction mode / without the library', NAMES.shopIdempotent, NAMES.shop, 0.8, ['its statements by hand']),
    ratio('replays from the store / baseline', NAMES.storeReplays, NAMES.baseline, 1.3, ['one SELECT 1 by hand']),
    ratio('kept replays / baseline', NAMES.keptReplays, NAMES.baseline, 2, ['a route without I/O', 'behind a pass-through interceptor']),
    {
      measure: 'app CPU per first request over the baseline, Redis store',
      value: `${signed(cpu)} (the same scripts by hand: ${signed(floorCpu)}; ours over them: ${signed(cpu - floorCpu)})`,
      target: '<= +0.15 ms',
      met: cpu <= 0.15,
    },
    {
      measure: 'hot key, 1,000 duplicates, pool 10 (PostgreSQL /transaction, /wait)',
      value: postgresHot.map((result) => `${result.route} ${result.seconds.toFixed(2)} s, ${result.executions} execution(s)`).join('; '),
      target: '< 2 s, 1 execution',
      met: slowest < 2 && postgresHot.every((result) => result.executions === 1),
    },
  ];
}

export interface ModelRow {
  mode: string;
  /** Added p50 over the baseline at one connection, ms: the library's route, and the same I/O by hand. */
  added: number;
  floorAdded: number;
  /** What the calibration predicts for the I/O the mode adds, and how it is counted. */
  predicted: number;
  io: string;
  /** The library's own share: ours minus the floor. */
  library: number;
}

/**
 * Added p50 at one connection read as "N round trips + M commits + library". The calibration routes give a round
 * trip (SELECT 1) and a commit that flushes, each over the same app without I/O.
 */
export function model(median: Median): { roundTripMs: number; commitMs: number; rows: ModelRow[] } {
  const p50 = (name: string) => median(`${name}${ONE_CONNECTION}`).p50;
  const none = p50(NAMES.calibrateNone);
  const roundTripMs = p50(NAMES.calibrateSelect) - none;
  const commitMs = p50(NAMES.calibrateCommit) - none;
  const row = (mode: string, ours: string, floor: string, io: string, predicted: number, baseline = p50(NAMES.baseline)): ModelRow => ({
    mode,
    added: p50(ours) - baseline,
    floorAdded: p50(floor) - baseline,
    predicted,
    io,
    library: p50(ours) - p50(floor),
  });
  return {
    roundTripMs,
    commitMs,
    rows: [
      // The claim and the completion are statements of their own, each committed (and flushed).
      row('lease', NAMES.lease, NAMES.leaseFloor, '2 commits (claim, completion)', 2 * commitMs),
      // START TRANSACTION rides with the claim, and the completion with COMMIT (one write each): two round trips
      // more than the baseline's INSERT, whose autocommit flushed as the COMMIT does. The floor sends all five apart.
      row(
        'transaction',
        NAMES.transaction,
        NAMES.transactionFloor,
        '2 round trips (START TRANSACTION with the claim, the completion with COMMIT; the floor: 4, each apart)',
        2 * roundTripMs,
      ),
      row('Redis', NAMES.redis, NAMES.redisFloor, '2 Redis scripts (claim, completion)', Number.NaN, p50(NAMES.redisBaseline)),
    ],
  };
}

export function printTargets(rows: Target[]): void {
  console.log('\nTargets (ratios of medians in this run)');
  for (const row of rows) console.log(`  ${row.met ? 'met    ' : 'NOT met'}  ${row.measure}: ${row.value} (target ${row.target})`);
}

export function printModel({ roundTripMs, commitMs, rows }: ReturnType<typeof model>): void {
  console.log(
    `\nAdded p50 at 1 connection = I/O + library. Calibration: a round trip ${roundTripMs.toFixed(2)} ms, a commit that flushes ${commitMs.toFixed(2)} ms`,
  );
  for (const row of rows) {
    const predicted = Number.isNaN(row.predicted) ? '' : `, the calibration predicts ${row.predicted.toFixed(2)} ms`;
    console.log(
      `  ${row.mode}: +${row.added.toFixed(2)} ms; the same I/O by hand +${row.floorAdded.toFixed(2)} ms (${row.io}${predicted}); library ${row.library.toFixed(2)} ms`,
    );
  }
}

export interface AbRow {
  scenario: string;
  connections: number;
  /** Median req/s of this build and of the other (BENCH_AB). */
  reqPerSec: [number, number];
  /** Medians of the ratios this/other of each round: the two ran one after the other, so each pair saw the same load. */
  ratio: number;
  cpuRatio: number;
  p50: [number, number];
  appCpu: [number, number];
  rounds: number;
}

/** Each scenario of the other build beside this build's twin, compared round by round. */
export function compareBuilds(scenarios: Scenario[], roundsOf: (scenario: Scenario) => Measured[]): AbRow[] {
  const middle = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  return scenarios
    .filter((scenario) => scenario.app.endsWith('-b'))
    .map((other) => {
      const twin = scenarios.find(
        (scenario) =>
          `${scenario.app}-b` === other.app && scenario.path === other.path && scenario.keys === other.keys && scenario.connections === other.connections,
      )!;
      const [a, b] = [roundsOf(twin), roundsOf(other)];
      return {
        scenario: twin.name,
        connections: twin.connections,
        reqPerSec: [middle(a.map((m) => m.reqPerSec)), middle(b.map((m) => m.reqPerSec))],
        ratio: middle(a.map((m, i) => m.reqPerSec / b[i].reqPerSec)),
        cpuRatio: middle(a.map((m, i) => m.cpu.app / b[i].cpu.app)),
        p50: [middle(a.map((m) => m.p50)), middle(b.map((m) => m.p50))],
        appCpu: [middle(a.map((m) => m.cpu.app)), middle(b.map((m) => m.cpu.app))],
        rounds: a.length,
      };
    });
}

export function printAb(rows: AbRow[], other: string): void {
  console.log(`\nA/B: this build against ${other}, side by side; medians of the per-round ratios this/other (req/s; app CPU per request)`);
  for (const row of rows) {
    console.log(
      `  ${row.scenario}: req/s ${row.ratio.toFixed(3)}x (${row.reqPerSec[0].toFixed(0)} / ${row.reqPerSec[1].toFixed(0)}); ` +
        `app CPU/req ${row.cpuRatio.toFixed(3)}x (${row.appCpu[0].toFixed(3)} / ${row.appCpu[1].toFixed(3)} ms); p50 ${row.p50[0].toFixed(2)} / ${row.p50[1].toFixed(2)} ms; ${row.rounds} rounds`,
    );
  }
}
