import * as pg from 'pg';
import { type Client, Pool, type PoolClient } from 'pg';
import {
  type NodePostgresParts,
  type PipelinedStatement,
  sendStatements,
  type WireConnection,
} from '../../libs/idempotency/src/storage/postgres/pipelined-statements';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { countSocketWrites } from '../support/socket-writes';

const parts = pg as unknown as NodePostgresParts & { utils: { prepareValue: (value: unknown) => unknown } };
const nodePostgres: NodePostgresParts = { Result: parts.Result, prepareValue: (value) => parts.utils.prepareValue(value) };

type Wired = PoolClient & { connection: WireConnection };
const wired = (client: PoolClient) => client as Wired;
const send = (client: PoolClient, statements: PipelinedStatement[]) => sendStatements(client, statements, nodePostgres);

/** A batch of statements in one write, on node-postgres' client, against the real server. */
describe('statements sent in one write', () => {
  let schema: string;
  let pool: Pool;
  let client: PoolClient;

  beforeAll(async () => {
    schema = await createSchema('pipelined');
    pool = new Pool({ connectionString: DATABASE_URL, max: 1 });
    await pool.query(`CREATE SEQUENCE "${schema}".ran`);
  });
  beforeEach(async () => {
    client = await pool.connect();
  });
  afterEach(() => client.release());
  afterAll(async () => {
    await pool?.end();
    await dropSchema(schema);
  });

  it('sends several statements in one write and gives back their rows as client.query() does', async () => {
    const text = `SELECT $1::int AS n, $2::jsonb AS doc, $3::bytea AS bytes, $4::timestamptz AS at, $5::text[] AS tags, $6::text AS nothing, 12345678901::int8 AS big`;
    const values = [7, { a: [1, 'b'] }, Buffer.from([0, 1, 255]), new Date('2026-01-02T03:04:05.678Z'), ['x', 'y,z'], null];
    const expected = await client.query(text, values);
    let results: Awaited<ReturnType<typeof send>> = [];
    const writes = await countSocketWrites(async () => {
      results = await send(client, [{ text: 'SELECT 1 AS one' }, { text, values }, { text: `SELECT nextval('"${schema}".ran') AS ran` }]);
    });
    expect(writes).toBe(1);
    expect(results.map((result) => result.command)).toEqual(['SELECT', 'SELECT', 'SELECT']);
    expect(results[0].rows).toEqual([{ one: 1 }]);
    expect(results[1].rows).toEqual(expected.rows);
    expect(results[1].rowCount).toBe(1);
    expect(Buffer.isBuffer((results[1].rows[0] as { bytes: unknown }).bytes)).toBe(true);
  });

  it("counts the rows a statement changed, as client.query()'s rowCount", async () => {
    await client.query(`CREATE TEMP TABLE counted (n int)`);
    const [inserted, updated, none] = await send(client, [
      { text: 'INSERT INTO counted SELECT generate_series(1, 3)' },
      { text: 'UPDATE counted SET n = n + 1 WHERE n > $1', values: [1] },
      { text: 'DELETE FROM counted WHERE n > 100' },
    ]);
    expect([inserted.rowCount, updated.rowCount, none.rowCount]).toEqual([3, 2, 0]);
    expect([inserted.command, updated.command, none.command]).toEqual(['INSERT', 'UPDATE', 'DELETE']);
    await client.query('DROP TABLE counted');
  });

  it('parses a named statement once per connection, records it as node-postgres does, and reuses it', async () => {
    const name = `pipelined_named_${Date.now()}`;
    const text = 'SELECT $1::int * 2 AS doubled';
    const parse = jest.spyOn(wired(client).connection, 'parse');
    try {
      const [first, again] = await send(client, [
        { name, text, values: [2] },
        { name, text, values: [3] },
      ]);
      expect([first.rows, again.rows]).toEqual([[{ doubled: 4 }], [{ doubled: 6 }]]);
      expect(parse).toHaveBeenCalledTimes(1);
      expect(wired(client).connection.parsedStatements[name]).toBe(text);

      parse.mockClear();
      const [, later] = await send(client, [{ text: 'SELECT 1' }, { name, text, values: [5] }]);
      expect(later.rows).toEqual([{ doubled: 10 }]);
      // Only the unnamed statement was parsed again.
      expect(parse).toHaveBeenCalledTimes(1);
      expect(parse).toHaveBeenCalledWith({ text: 'SELECT 1', name: '' });
      // node-postgres' own queries find it prepared too.
      expect((await client.query({ name, text, values: [6] })).rows).toEqual([{ doubled: 12 }]);
      expect(parse).toHaveBeenCalledTimes(1);
    } finally {
      parse.mockRestore();
    }
    const prepared = await client.query(`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name = $1`, [name]);
    expect(prepared.rows).toEqual([{ n: 1 }]);
  });

  it('fails with the first error as a DatabaseError; the server skips the rest; the connection stays usable', async () => {
    const before = await client.query<{ last_value: string; is_called: boolean }>(`SELECT last_value, is_called FROM "${schema}".ran`);
    const skipped = `pipelined_skipped_${Date.now()}`;
    const failing = `pipelined_failing_${Date.now()}`;
    const failure = await send(client, [
      { text: 'SELECT 1' },
      { name: failing, text: 'SELECT 1 / $1::int AS q', values: [0] },
      { text: `SELECT nextval('"${schema}".ran')` },
      { name: skipped, text: 'SELECT 2 AS two' },
    ]).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(pg.DatabaseError);
    expect(failure).toMatchObject({ code: '22012' });
    // A sequence is not rolled back: it did not move, so the statement after the error never ran.
    const after = await client.query(`SELECT last_value, is_called FROM "${schema}".ran`);
    expect(after.rows).toEqual(before.rows);
    // Parsed before its execution failed: recorded, so that it is not parsed again (which the server would refuse).
    expect(wired(client).connection.parsedStatements[failing]).toBe('SELECT 1 / $1::int AS q');
    expect(wired(client).connection.parsedStatements[skipped]).toBeUndefined();
    const [quotient, two] = await send(client, [
      { name: failing, text: 'SELECT 1 / $1::int AS q', values: [1] },
      { name: skipped, text: 'SELECT 2 AS two' },
    ]);
    expect([quotient.rows, two.rows]).toEqual([[{ q: 1 }], [{ two: 2 }]]);
    expect((client as unknown as Client).getTransactionStatus()).toBe('I');
  });

  it('keeps the transaction that a START TRANSACTION in the batch opened, aborted after an error, until it is rolled back', async () => {
    await expect(send(client, [{ text: 'START TRANSACTION' }, { text: 'SELECT 1 / 0' }, { text: 'COMMIT' }])).rejects.toMatchObject({ code: '22012' });
    expect((client as unknown as Client).getTransactionStatus()).toBe('E');
    await expect(client.query('SELECT 1')).rejects.toMatchObject({ code: '25P02' });
    await client.query('ROLLBACK');
    const [, shown] = await send(client, [{ text: 'START TRANSACTION ISOLATION LEVEL SERIALIZABLE' }, { text: 'SHOW transaction_isolation' }]);
    expect(shown.rows).toEqual([{ transaction_isolation: 'serializable' }]);
    expect((client as unknown as Client).getTransactionStatus()).toBe('T');
    await client.query('ROLLBACK');
  });

  it('fails without writing anything where a value cannot be sent', async () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const writes = await countSocketWrites(() =>
      expect(send(client, [{ text: 'SELECT 1' }, { text: 'SELECT $1::jsonb', values: [circular] }])).rejects.toThrow(),
    );
    expect(writes).toBe(0);
    expect((await client.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });
});
