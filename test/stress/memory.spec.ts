import autocannon from 'autocannon';
import { type ChildApp, startChildApp } from '../support/child-app';
import { createSchema, dropSchema } from '../support/database';
import { createEffectsTable, FULL, scaled } from './load';

interface Memory {
  heapUsed: number;
  rss: number;
}

/** Many distinct keys through one instance: what the library keeps per key must not outlive the request. */
describe(`memory over many distinct keys${FULL ? '' : ' (scaled down)'}`, () => {
  const KEYS = scaled(10_000, 100_000);
  let schema: string;
  let app: ChildApp;

  beforeAll(async () => {
    schema = await createSchema('stress_memory');
    await createEffectsTable(schema);
    app = await startChildApp('stress-app', { SCHEMA: schema, QUIET: '1' }, ['--expose-gc']);
  });
  afterAll(async () => {
    await app?.kill();
    await dropSchema(schema);
  });

  const memory = async (): Promise<Memory> => (await (await fetch(`${app.url}/memory`)).json()) as Memory;
  const load = (amount: number) =>
    new Promise<autocannon.Result>((resolve, reject) =>
      autocannon(
        {
          url: `${app.url}/lease`,
          method: 'POST',
          connections: 20,
          amount,
          headers: { 'content-type': 'application/json', 'idempotency-key': '[<id>]' },
          body: '{"key":"[<id>]"}',
          idReplacement: true,
        },
        (error: Error | null, result: autocannon.Result) => (error ? reject(error) : resolve(result)),
      ),
    );

  // A leak of 40 bytes per key shows at either scale; below that, what remains is the collector's noise.
  const allowed = 2 * 1024 * 1024 + 40 * (KEYS - KEYS / 5);

  it(`stays flat over ${KEYS} keys: after warm-up the heap grows by less than 2 MB plus 40 bytes a key`, async () => {
    const warmUp = await load(KEYS / 5);
    const before = await memory();
    const rest = await load(KEYS - KEYS / 5);
    const after = await memory();

    expect(warmUp.non2xx + rest.non2xx + warmUp.errors + rest.errors).toBe(0);
    const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1);
    if (FULL) {
      console.log(
        `${KEYS} keys: heap ${mb(before.heapUsed)} -> ${mb(after.heapUsed)} MB, rss ${mb(before.rss)} -> ${mb(after.rss)} MB after ${KEYS / 5} warm-up keys`,
      );
    }
    expect(after.heapUsed - before.heapUsed).toBeLessThan(allowed);
  }, 600_000);
});
