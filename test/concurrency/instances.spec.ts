import { randomUUID } from 'node:crypto';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/engines';
import { startApp, type TestApp } from '../support/harness';
import { burst, send } from '../support/http';

/** Two app instances, each with its own pool, racing on the same keys through the same database. */
describe.each(ENGINES)('two instances with separate pools, %s store', (engine) => {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase(engine, 'instances');
    a = await startApp('express', { engine, schema: database.name, poolSize: 5 });
    b = await startApp('fastify', { engine, schema: database.name, poolSize: 5 });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await database?.drop();
  });

  it.each([
    ['lease mode, reject', '/t/basic'],
    ['lease mode, wait', '/t/wait'],
    ['transaction mode', '/t/tx'],
  ])('run the handler once for 100 duplicates split across both (%s)', async (_mode, path) => {
    const key = randomUUID();
    const replies = await burst(100, (index) => send(index % 2 ? a.url : b.url, path, { key, body: { label: key, ms: 150 } }));
    expect(await a.effects(key)).toBe(1);
    expect(replies.every((reply) => reply.status === 201 || reply.status === 409)).toBe(true);
    const firstAnswers = new Set(replies.filter((reply) => reply.status === 201).map((reply) => reply.text));
    expect(firstAnswers.size).toBe(1);
  });
});
