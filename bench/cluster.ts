/**
 * What `waitForReplicas` costs on a Redis Cluster: first requests (a fresh key each, so a claim and a
 * completion, each followed by WAIT) with and without it, at 1 and at 32 connections, in one run.
 *
 *   npm run bench:cluster        (BENCH_DURATION=5 seconds per run, BENCH_ROUNDS=3)
 *
 * Starts a Redis Cluster of its own (three masters with a replica each, on loopback, replication not slowed),
 * and two instances of the stress app (test/apps/stress-app.ts) on it, one with the option and one without;
 * each handler writes one row in PostgreSQL. Rounds are interleaved and the median round is reported, so that
 * a noisy moment on a shared machine hits every scenario alike. Prints a table and writes bench/cluster-results.json.
 */
import autocannon from 'autocannon';
import { writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { type ChildApp, startChildApp } from '../test/support/child-app';
import { createSchema, dropSchema } from '../test/support/database';
import { uniquePrefix } from '../test/support/redis';
import { RedisCluster } from '../test/support/redis-cluster';
import { createEffectsTable } from '../test/stress/load';

const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WAIT = { count: 1, timeout: '1s' };
const root = join(__dirname, '../..');

interface Scenario {
  wait: boolean;
  connections: number;
}

interface Measured {
  reqPerSec: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function main(): Promise<void> {
  const cluster = await RedisCluster.start();
  const schema = await createSchema('bench_cluster');
  const apps: ChildApp[] = [];
  try {
    await createEffectsTable(schema);
    const env = { SCHEMA: schema, QUIET: '1', STORE: 'redis', REDIS_CLUSTER: JSON.stringify(cluster.addresses()), KEY_PREFIX: `${uniquePrefix('bench')}:` };
    const without = await startChildApp('stress-app', env);
    apps.push(without);
    const withWait = await startChildApp('stress-app', { ...env, WAIT_REPLICAS: JSON.stringify(WAIT) });
    apps.push(withWait);
    const scenarios: Scenario[] = [1, 32].flatMap((connections) => [false, true].map((wait) => ({ wait, connections })));
    const rounds = new Map<Scenario, Measured[]>(scenarios.map((scenario) => [scenario, []]));
    for (let round = 1; round <= ROUNDS; round++) {
      for (const scenario of scenarios) {
        rounds.get(scenario)!.push(await drive((scenario.wait ? withWait : without).url, scenario.connections));
        process.stderr.write(`round ${round}/${ROUNDS}: ${scenario.wait ? 'with' : 'without'} waitForReplicas, ${scenario.connections} connections\n`);
      }
    }
    const median = (scenario: Scenario) => [...rounds.get(scenario)!].sort((a, b) => a.reqPerSec - b.reqPerSec)[Math.floor(ROUNDS / 2)];
    const rows = scenarios.map((scenario) => {
      const result = median(scenario);
      const base = median(scenarios.find((other) => !other.wait && other.connections === scenario.connections)!);
      return {
        waitForReplicas: scenario.wait,
        connections: scenario.connections,
        ...result,
        ratio: result.reqPerSec / base.reqPerSec,
        addedP50: result.p50 - base.p50,
      };
    });
    console.table(
      rows.map((row) => ({
        waitForReplicas: row.waitForReplicas ? `{ count: 1, timeout: '1s' }` : 'off',
        connections: row.connections,
        'req/s': Math.round(row.reqPerSec),
        'p50 ms': row.p50.toFixed(2),
        'p99 ms': row.p99.toFixed(2),
        'ratio to off': row.ratio.toFixed(2),
        'added p50 ms': row.addedP50.toFixed(2),
        'non-2xx': row.non2xx,
        errors: row.errors,
      })),
    );
    const results = {
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpu: cpus()[0]?.model, node: process.version },
      settings: { durationSeconds: DURATION, rounds: ROUNDS, waitForReplicas: WAIT, route: 'POST /lease, a fresh key per request' },
      scenarios: rows,
    };
    writeFileSync(join(root, 'bench/cluster-results.json'), `${JSON.stringify(results, null, 2)}\n`);
    console.log('\nwritten: bench/cluster-results.json');
  } finally {
    await Promise.all(apps.map((app) => app.kill()));
    await cluster.stop();
    await dropSchema(schema);
  }
}

/** One autocannon run of first requests; latencies kept from each response (autocannon's histogram keeps whole ms). */
function drive(url: string, connections: number): Promise<Measured> {
  const latencies: number[] = [];
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${url}/lease`,
        connections,
        duration: DURATION,
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': '[<id>]' },
        body: '{"key":"[<id>]"}',
        idReplacement: true,
      },
      (error: Error | null, result: autocannon.Result) => {
        if (error) return reject(error);
        latencies.sort((a, b) => a - b);
        const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
        resolve({
          reqPerSec: result.requests.total / result.duration,
          p50: at(0.5),
          p99: at(0.99),
          non2xx: result.non2xx,
          errors: result.errors + result.timeouts,
        });
      },
    );
    instance.on('response', (_client: unknown, _status: number, _bytes: number, responseTime: number) => latencies.push(responseTime));
  });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
