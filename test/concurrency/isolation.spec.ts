import { randomUUID } from 'node:crypto';
import { createSchema, dropSchema, sql } from '../support/database';
import { startApp, type TestApp } from '../support/harness';
import { burst, send } from '../support/http';

/** Databases (or roles) set to a stricter default isolation level: claims run in READ COMMITTED anyway. */
describe('a database whose default isolation is REPEATABLE READ', () => {
  let schema: string;
  let t: TestApp;

  beforeAll(async () => {
    schema = await createSchema('isolation');
    t = await startApp('express', { schema, connectionOptions: '-c default_transaction_isolation=repeatable\\ read' });
  });
  afterAll(async () => {
    await t?.close();
    await dropSchema(schema);
  });

  it('uses the stricter default for the app', async () => {
    const [row] = await t.dataSource.query<Array<{ default_transaction_isolation: string }>>(`SHOW default_transaction_isolation`);
    expect(row.default_transaction_isolation).toBe('repeatable read');
    expect(await sql(`SELECT 1 AS one`)).toEqual([{ one: 1 }]);
  });

  it.each(['/t/tx', '/t/wait'])('still answers 100 duplicates on %s with one execution and no 503', async (path) => {
    const key = randomUUID();
    const replies = await burst(100, () => send(t.url, path, { key, body: { label: key, ms: 100 } }));
    expect(replies.filter((reply) => reply.status !== 201)).toEqual([]);
    expect(await t.effects(key)).toBe(1);
  });
});
