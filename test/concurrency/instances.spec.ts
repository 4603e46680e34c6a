import { randomUUID } from 'node:crypto';
import { createTestDatabase, describeEachDatabase, onRoute, type TestDatabase } from '../support/engines';
import { startApp, type TestApp } from '../support/harness';
import { burst, send } from '../support/http';

/** Two app instances, each with its own pool, racing on the same keys through the same database. */
describeEachDatabase('two instances with separate pools', (route) => {
  let database: TestDatabase;
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    database = await createTestDatabase(route.engine, 'instances');
    const options = { ...onRoute(route, database), poolSize: 5 };
    a = await startApp('express', options);
    b = await startApp('fastify', options);
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
