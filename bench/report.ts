/** What `npm run bench` prints: the scenarios' table, the hot key, MariaDB against PostgreSQL. */
import { type App, HOT_KEY_REQUESTS, type hot, isPeer, type Measured, type Scenario } from './driver';

export type Row = Measured & { scenario: string; app: App; connections: number; ratio: number; addedP50?: number };

export function printTable(rows: Row[]): void {
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
    isPeer(row.app) ? 'not counted' : row.sql.toFixed(2),
    row.redis.toFixed(2),
    `${row.cpu.app.toFixed(2)} + ${row.cpu.db.toFixed(2)} + ${row.cpu.redis.toFixed(2)}`,
    String(row.non2xx + row.errors),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...cells.map((cell) => cell[column].length)));
  const line = (cell: string[]) => `| ${cell.map((value, column) => value.padEnd(widths[column])).join(' | ')} |`;
  console.log(`\n${line(header)}\n| ${widths.map((width) => '-'.repeat(width)).join(' | ')} |`);
  for (const cell of cells) console.log(line(cell));
}

export function printHotKey(results: Array<Awaited<ReturnType<typeof hot>>>, pool: number): void {
  console.log(`\nHot key: ${HOT_KEY_REQUESTS} concurrent duplicates of one key, pool of ${pool}`);
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

export interface MariaDbComparison {
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

export function compareMariaDb(throughput: Scenario[], latency: Scenario[], median: (scenario: Scenario) => Measured): MariaDbComparison[] {
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

export function printMariaDbComparison(comparisons: MariaDbComparison[]): void {
  console.log('\nMariaDB (MySQL store) against PostgreSQL, same run: req/s, MariaDB / PostgreSQL, each over its own baseline');
  for (const row of comparisons) {
    console.log(
      `  ${row.scenario}: ${row.mariadbReqPerSec.toFixed(0)} vs ${row.postgresReqPerSec.toFixed(0)} req/s = ${row.toPostgres.toFixed(2)}x; ` +
        `to own baseline ${row.mariadbToItsBaseline.toFixed(2)}x vs ${row.postgresToItsBaseline.toFixed(2)}x`,
    );
  }
}
