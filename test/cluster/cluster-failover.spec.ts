import type { WaitForReplicas } from 'nestjs-idempotency';
import { report } from '../stress/load';
import { type FailoverFigures, runFailover } from './failover-run';

/**
 * A master of the cluster SIGKILLed under load, once with Redis' asynchronous replication and once with
 * `waitForReplicas`; its replication link lags 300 ms, so that what a lagging replica misses is seen
 * (failover-run.ts says how). The longer runs, several of each, are `npm run bench:failover`.
 */
describe('a Redis Cluster master killed under load', () => {
  // Without the option the new master takes writes at once: the killed node need not come back.
  const run = (waitForReplicas?: WaitForReplicas) =>
    runFailover({
      waitForReplicas,
      restartKilled: waitForReplicas !== undefined,
      linkDelayMs: 300,
      keys: 20,
      deliveries: 100,
      roundsAfter: 1,
      concurrency: 16,
      killAfterMs: 1500,
    });
  const show = (label: string, figures: FailoverFigures) => report(`failover ${label}: ${JSON.stringify(figures)}`);
  const serverErrors = (figures: FailoverFigures) => Object.keys(figures.answers).filter((status) => Number(status) >= 500 && status !== '503');

  it('without waitForReplicas loses writes it acknowledged', async () => {
    const figures = await run();
    show('without waitForReplicas', figures);
    // The lagging link makes the loss certain: what this checks is that the method shows it, so the next test means something.
    expect(figures.probe.lostClaims + figures.probe.lostCompletions).toBeGreaterThan(0);
    expect(serverErrors(figures)).toEqual([]);
  }, 120_000);

  it('with waitForReplicas loses no claim and no completion it acknowledged', async () => {
    const figures = await run({ count: 1, timeout: '2s' });
    show('with waitForReplicas', figures);
    expect(figures.probe.acknowledgedClaims + figures.probe.acknowledgedCompletions).toBeGreaterThan(0);
    expect([figures.probe.lostClaims, figures.probe.lostCompletions]).toEqual([0, 0]);
    expect(serverErrors(figures)).toEqual([]);
  }, 120_000);
});
