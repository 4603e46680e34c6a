/**
 * Redis Cluster failovers under load, several of each kind, with and without `waitForReplicas`:
 * what clients were answered, how many keys ran twice, how many acknowledged writes the new master lacks,
 * and how long the replica took to take over.
 *
 *   npm run bench:failover       (FAILOVER_RUNS=3 runs of each kind)
 *
 * Each run is test/cluster/failover-run.ts: a cluster of its own, two app instances, a SIGKILLed master whose
 * replication link lags by 0 ms (loopback as it is) or 300 ms. The apps' lease is 2 s and their Cluster client
 * fails a command after 2 s, except in the kinds that are "waited out": a 10 s lease, and a client that retries
 * for up to 8 s (16 tries 500 ms apart) before it fails a command, longer than the takeover. Prints a table and
 * writes bench/failover-results.json.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WaitForReplicas } from 'nestjs-idempotency';
import { type FailoverFigures, type FailoverOptions, runFailover } from '../test/cluster/failover-run';

const RUNS = Number(process.env.FAILOVER_RUNS ?? 3);
const WAIT: WaitForReplicas = { count: 1, timeout: '2s' };
/** A lease and a client that outlast the takeover (about 3 s with cluster-node-timeout 1500 ms). */
const WAITED_OUT: Pick<FailoverOptions, 'lease' | 'clientOptions'> = {
  lease: '10s',
  clientOptions: { retryDelayOnFailover: 500, redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 10_000 } },
};
const root = join(__dirname, '../..');

async function main(): Promise<void> {
  const kinds: Array<Pick<FailoverOptions, 'linkDelayMs' | 'waitForReplicas' | 'lease' | 'clientOptions'>> = [
    { linkDelayMs: 0 },
    { linkDelayMs: 0, waitForReplicas: WAIT },
    { linkDelayMs: 300 },
    { linkDelayMs: 300, waitForReplicas: WAIT },
    { linkDelayMs: 300, ...WAITED_OUT },
    { linkDelayMs: 300, waitForReplicas: WAIT, ...WAITED_OUT },
  ];
  const runs = new Map<(typeof kinds)[number], FailoverFigures[]>(kinds.map((kind) => [kind, []]));
  // Interleaved, so that a slow stretch of the machine falls on every kind alike.
  for (let run = 1; run <= RUNS; run++) {
    for (const kind of kinds) {
      const figures = await runFailover({ ...kind, keys: 20, deliveries: 100, concurrency: 16, killAfterMs: 1500 });
      runs.get(kind)!.push(figures);
      process.stderr.write(`run ${run}/${RUNS}, ${JSON.stringify(kind)}: ${JSON.stringify(figures)}\n`);
    }
  }
  const sum = (list: number[]) => list.reduce((a, b) => a + b, 0);
  const spread = (list: number[]) => `${Math.min(...list)}..${Math.max(...list)}`;
  const rows = kinds.map((kind) => {
    const all = runs.get(kind)!;
    const answers: Record<string, number> = {};
    for (const figures of all) for (const [status, count] of Object.entries(figures.answers)) answers[status] = (answers[status] ?? 0) + count;
    return {
      replicationLagMs: kind.linkDelayMs,
      waitForReplicas: kind.waitForReplicas ? `{ count: ${WAIT.count}, timeout: '${String(WAIT.timeout)}' }` : 'off',
      failoverWaitedOut: kind.lease ? 'lease 10s, client retries 8s' : 'no (lease 2s, client fails at 2s)',
      runs: all.length,
      keys: sum(all.map((figures) => sum(Object.values(figures.runsPerKey)))),
      doubleExecutions: sum(all.map((figures) => figures.doubleExecutions)),
      lostAnswers: sum(all.map((figures) => figures.lostAnswers)),
      acknowledgedClaimsLost: `${sum(all.map((f) => f.probe.lostClaims))} of ${sum(all.map((f) => f.probe.acknowledgedClaims))}`,
      acknowledgedCompletionsLost: `${sum(all.map((f) => f.probe.lostCompletions))} of ${sum(all.map((f) => f.probe.acknowledgedCompletions))}`,
      answers: JSON.stringify(answers),
      takeoverMs: spread(all.map((figures) => figures.takeoverMs)),
      writesRefusedForMs: spread(all.map((figures) => figures.lastFailedWriteMs)),
    };
  });
  console.table(rows);
  const results = {
    date: new Date().toISOString(),
    settings: { runs: RUNS, waitForReplicas: WAIT, waitedOut: WAITED_OUT },
    rows,
    runs: kinds.map((kind) => ({ ...kind, figures: runs.get(kind) })),
  };
  writeFileSync(join(root, 'bench/failover-results.json'), `${JSON.stringify(results, null, 2)}\n`);
  console.log('\nwritten: bench/failover-results.json');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
