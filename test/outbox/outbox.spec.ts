import { randomUUID } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { Queue, type Worker } from 'bullmq';
import { createSchema, dropSchema, sql } from '../support/database';
import { startApp, type TestApp } from '../support/harness';
import { burst, countBy, send } from '../support/http';
import { FULFILMENT_QUEUE, fulfilmentWorker, OutboxController } from '../support/outbox.controller';
import { dropPrefix, eventually, OwnRedis, REDIS_URL, uniquePrefix } from '../support/redis';

describe('the transactional outbox to BullMQ', () => {
  let schema: string;
  let prefix: string;
  const apps: TestApp[] = [];
  const workers: Worker[] = [];
  const queues: Queue[] = [];

  const start = async (outbox: Record<string, unknown> = {}, connection = REDIS_URL) => {
    const app = await startApp('express', {
      schema,
      controllers: [OutboxController],
      idempotency: { outbox: { connection, prefix, pollInterval: '100ms', ...outbox } },
    });
    apps.push(app);
    return app;
  };
  const worker = (app: TestApp, connection = REDIS_URL) => {
    const started = fulfilmentWorker(app.service, connection, prefix);
    workers.push(started);
    return started;
  };
  const outboxRows = async () =>
    sql<{ job_id: string; sends: number; sent: boolean; processed: boolean }>(
      `SELECT job_id, sends, sent_at IS NOT NULL AS sent, processed_at IS NOT NULL AS processed FROM "${schema}".idempotency_outbox ORDER BY id`,
    );
  const jobsInQueue = async () => {
    const queue = new Queue(FULFILMENT_QUEUE, { connection: { url: REDIS_URL }, prefix });
    queues.push(queue);
    const counts = await queue.getJobCounts('wait', 'active', 'completed', 'failed', 'delayed');
    return Object.values(counts).reduce((sum, count) => sum + count, 0);
  };
  const fulfilments = async () => (await sql<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".effects WHERE label LIKE 'fulfil:%'`))[0].n;

  beforeEach(async () => {
    schema = await createSchema('outbox');
    prefix = uniquePrefix('outbox');
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
    await Promise.all(queues.splice(0).map((q) => q.close()));
    await Promise.all(apps.splice(0).map((app) => app.close()));
    await dropSchema(schema);
    await dropPrefix(prefix);
  });

  it('100 concurrent duplicate deliveries give one outbox row, one job and one effect', async () => {
    const app = await start();
    worker(app);
    const key = randomUUID();
    const answers = await burst(100, () => send(app.url, '/outbox/events', { key, body: { label: key } }));
    expect(countBy(answers, (answer) => answer.status)).toEqual({ 200: 100 });
    expect(new Set(answers.map((answer) => answer.text)).size).toBe(1);
    await eventually('the job ran', async () => (await app.effects(`fulfil:${key}`)) === 1);
    expect(await app.effects(`order:${key}`)).toBe(1);
    expect(await outboxRows()).toEqual([expect.objectContaining({ sends: 1, sent: true, processed: true })]);
    expect(await jobsInQueue()).toBe(1);
  });

  it('two relays side by side send every row exactly once', async () => {
    const [first, second] = [await start(), await start()];
    worker(first);
    const labels = Array.from({ length: 200 }, () => randomUUID());
    await burst(labels.length, (index) => send([first, second][index % 2].url, '/outbox/events', { key: labels[index], body: { label: labels[index] } }));
    await eventually('every job ran', async () => (await fulfilments()) === 200);
    const rows = await outboxRows();
    expect(rows).toHaveLength(200);
    expect(countBy(rows, (row) => row.sends)).toEqual({ 1: 200 });
    expect(await jobsInQueue()).toBe(200);
  });

  it('sets aside a job BullMQ refuses, with its error, and sends the others', async () => {
    const app = await start();
    worker(app);
    const [bad, good] = [randomUUID(), randomUUID()];
    await send(app.url, '/outbox/events', { key: bad, body: { label: bad, badOption: true } });
    await send(app.url, '/outbox/events', { key: good, body: { label: good } });
    await eventually('the good job ran', async () => (await app.effects(`fulfil:${good}`)) === 1);
    const [row] = await sql<{ failed: boolean; last_error: string; sent: boolean }>(
      `SELECT failed_at IS NOT NULL AS failed, last_error, sent_at IS NOT NULL AS sent FROM "${schema}".idempotency_outbox WHERE data->>'label' = $1`,
      [bad],
    );
    expect(row).toMatchObject({ failed: true, sent: false });
    expect(row.last_error).toMatch(/priority/i);
    expect(await app.effects(`fulfil:${bad}`)).toBe(0);
  });

  it("recovers when Redis goes away during BullMQ's set-up of a queue", async () => {
    // Between the client and Redis: lets the connection's own INFO (ready check) through, cuts the connection
    // at the next one (BullMQ's version check when the relay first makes its queue), then forwards everything.
    let infos = 0;
    const sockets = new Set<Socket>();
    const proxy = createServer((client) => {
      const upstream = connect(Number(new URL(REDIS_URL).port || 6379), new URL(REDIS_URL).hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('error', () => socket.destroy());
        socket.on('close', () => sockets.delete(socket));
      }
      upstream.pipe(client);
      client.on('data', (chunk: Buffer) => {
        if (/\r\ninfo\r\n/i.test(chunk.toString('latin1')) && ++infos === 2) {
          client.destroy();
          upstream.destroy();
        } else upstream.write(chunk);
      });
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    try {
      const app = await start({}, `redis://127.0.0.1:${(proxy.address() as { port: number }).port}`);
      const key = randomUUID();
      expect((await send(app.url, '/outbox/events', { key, body: { label: key } })).status).toBe(200);
      await eventually('the job reached BullMQ', async () => (await jobsInQueue()) === 1, 15_000);
      expect(infos).toBeGreaterThanOrEqual(3);
      expect(await outboxRows()).toMatchObject([{ sends: 1, sent: true }]);
    } finally {
      await Promise.all(apps.splice(0).map((app) => app.close()));
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => proxy.close(resolve));
    }
  });

  it('refuses to enqueue outside a transaction', async () => {
    const app = await start({ relay: false });
    expect((await send(app.url, '/outbox/outside', { body: { label: 'x' } })).status).toBe(500);
    expect(await outboxRows()).toEqual([]);
  });

  it('a job delivered again (stalled, or re-sent after BullMQ removed it) takes effect once', async () => {
    const app = await start({ relay: false });
    const job = { id: 'outbox-again', queueName: FULFILMENT_QUEUE };
    const effect = () =>
      app.service.runJob(job, async (em) => {
        await em.query(`INSERT INTO "${schema}".effects (label) VALUES ('fulfil:again')`);
        return { done: true };
      });
    const results = await Promise.all(Array.from({ length: 10 }, effect));
    expect(results).toEqual(Array(10).fill({ done: true }));
    expect(await effect()).toEqual({ done: true });
    expect(await app.effects('fulfil:again')).toBe(1);
  });

  it('keeps rows while Redis is down, sends them when it returns, and re-sends jobs a restart lost', async () => {
    const redis = await OwnRedis.start();
    try {
      const app = await start({ redeliverAfter: '2s', sendTimeout: '1s' }, redis.url);
      worker(app, redis.url);
      const before = Array.from({ length: 20 }, () => randomUUID());
      await Promise.all(before.map((label) => send(app.url, '/outbox/events', { key: label, body: { label } })));
      await redis.kill(); // loses whatever it held: sent jobs not yet run are gone
      const during = Array.from({ length: 30 }, () => randomUUID());
      const answers = await Promise.all(during.map((label) => send(app.url, '/outbox/events', { key: label, body: { label } })));
      expect(countBy(answers, (answer) => answer.status)).toEqual({ 200: 30 });
      expect((await outboxRows()).filter((row) => !row.sent).length).toBeGreaterThan(0);
      await redis.restart();
      const all = [...before, ...during];
      await eventually('every event was fulfilled', async () => (await fulfilments()) >= all.length, 40_000);
      const counts = await Promise.all(all.map((label) => app.effects(`fulfil:${label}`)));
      expect(new Set(counts)).toEqual(new Set([1]));
      expect((await outboxRows()).every((row) => row.sent && row.processed)).toBe(true);
    } finally {
      // Everything connected to this Redis closes before it goes.
      await Promise.all(workers.splice(0).map((w) => w.close()));
      await Promise.all(apps.splice(0).map((app) => app.close()));
      await redis.kill();
    }
  }, 90_000);
});
