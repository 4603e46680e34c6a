import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { type ChildApp, startChildApp } from '../support/child-app';
import { OwnPostgres } from '../support/postgres';
import { type Attempt, deliver, duplicates, FULL, inParallel, notOnce, report, scaled } from './load';

/** PostgreSQL crashes (stopped in immediate mode) and comes back while two instances are under load. */
describe(`PostgreSQL restarted under load${FULL ? '' : ' (scaled down)'}`, () => {
  const KEYS = scaled(20, 100);
  const DELIVERIES = scaled(200, 1000);
  const OUTAGE_MS = scaled(1500, 4000);
  let postgres: OwnPostgres;
  const apps: ChildApp[] = [];

  const query = async <T>(text: string, params: unknown[] = []): Promise<T[]> => {
    const client = new Client({ connectionString: postgres.url });
    await client.connect();
    try {
      return (await client.query(text, params)).rows as T[];
    } finally {
      await client.end();
    }
  };

  beforeAll(async () => {
    postgres = await OwnPostgres.create();
    await query(`CREATE TABLE effects (id bigserial PRIMARY KEY, mode text NOT NULL, key text NOT NULL, pid int NOT NULL)`);
    for (let i = 0; i < 2; i++) {
      apps.push(await startChildApp('stress-app', { DATABASE_URL: postgres.url, POOL: '5', HANDLER_MS: '10', QUIET: '1' }));
    }
  }, 60_000);
  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill()));
    postgres?.destroy();
  });

  it('answers 503 with Retry-After while it is down, runs no handler without a claim, and recovers without a restart', async () => {
    const { keys, deliveries } = duplicates(KEYS, DELIVERIES);
    const attempts: Attempt[] = [];
    const urls = () => apps.map((app) => app.url);
    const load = inParallel(deliveries, 20, (key) => deliver(urls, '/tx', key, attempts, Date.now() + 90_000));

    while (attempts.length < DELIVERIES / 10) await sleep(10);
    postgres.stop('immediate');
    const downAt = Date.now();
    await sleep(OUTAGE_MS);
    const upAt = Date.now();
    postgres.start();
    await load;

    // Asked and answered while the database was down: refused as the store being unavailable, except
    // duplicates of keys this instance had already replayed, answered from its replay cache.
    const duringOutage = attempts.filter((attempt) => attempt.at >= downAt + 100 && attempt.at + attempt.ms <= upAt);
    expect(duringOutage.filter((attempt) => attempt.status === 503).length).toBeGreaterThan(10);
    const unavailable = (attempt: Attempt) => attempt.status === 503 && Number(attempt.retryAfter) >= 1;
    const replayed = (attempt: Attempt) => attempt.status === 201 && attempt.replayed;
    expect(duringOutage.filter((attempt) => !unavailable(attempt) && !replayed(attempt))).toEqual([]);
    // No handler started while the database was down: nothing ran without a claim.
    report(
      `PostgreSQL down ${upAt - downAt} ms: ${duringOutage.filter(unavailable).length} answers 503 with Retry-After, ` +
        `${duringOutage.filter(replayed).length} replays from the replay cache; all ${DELIVERIES} deliveries answered ${Date.now() - upAt} ms after the restart`,
    );
    const starts = (await Promise.all(apps.map(async (app) => (await (await fetch(`${app.url}/starts`)).json()) as number[]))).flat();
    expect(starts.filter((at) => at > downAt + 100 && at < upAt)).toEqual([]);
    // The same processes recovered, and each key took effect exactly once.
    expect(apps.map((app) => app.process.exitCode ?? app.process.signalCode)).toEqual([null, null]);
    const rows = await query<{ key: string; count: number }>(`SELECT key, count(*)::int AS count FROM effects GROUP BY key`);
    expect(notOnce(keys, new Map(rows.map((row) => [row.key, row.count])))).toEqual({});
    // A handler cut off by the crash fails as the app's own 500 (its writes are rolled back and the
    // provider retries); none other, and no connection was lost.
    const inFlightAtCrash = (attempt: Attempt) => attempt.at < downAt && attempt.at + attempt.ms >= downAt;
    expect(attempts.filter((attempt) => attempt.status === 'connection lost' || (attempt.status === 500 && !inFlightAtCrash(attempt)))).toEqual([]);
  });
});
