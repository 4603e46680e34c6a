import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Worker } from 'bullmq';
import { type ChildApp, startCompiled } from '../support/child-app';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';
import { startApp, type TestApp } from '../support/harness';
import { burst, countBy, send } from '../support/http';
import { fulfilmentWorker, OutboxController } from '../support/outbox.controller';
import { dropPrefix, eventually, OwnRedis, REDIS_URL, uniquePrefix } from '../support/redis';

/** Relays and workers as processes of their own, killed with SIGKILL where it hurts most. */
describe('the outbox across crashes', () => {
  let schema: string;
  let prefix: string;
  let app: TestApp;
  const children: ChildApp[] = [];
  const workers: Worker[] = [];

  const child = async (name: 'outbox-relay' | 'outbox-worker', env: Record<string, string>) => {
    const started = await startCompiled(`dist/test/apps/${name}.js`, { DATABASE_URL, SCHEMA: schema, PREFIX: prefix, REDIS_URL, ...env }, /ready (\d+)/);
    children.push(started);
    return started;
  };
  const exited = (process: ChildApp) =>
    new Promise<void>((resolve) =>
      process.process.exitCode !== null || process.process.signalCode !== null ? resolve() : process.process.once('exit', () => resolve()),
    );
  const deliver = (labels: string[], body: Record<string, unknown> = {}) =>
    Promise.all(labels.map((label) => send(app.url, '/outbox/events', { key: label, body: { label, ...body } })));
  const rows = () =>
    sql<{ sends: number; sent: boolean; processed: boolean }>(
      `SELECT sends, sent_at IS NOT NULL AS sent, processed_at IS NOT NULL AS processed FROM "${schema}".idempotency_outbox`,
    );
  const effectCounts = (labels: string[], kind: string) => Promise.all(labels.map((label) => app.effects(`${kind}:${label}`)));

  beforeEach(async () => {
    schema = await createSchema('outbox_crash');
    prefix = uniquePrefix('crash');
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((worker) => worker.close()));
    await Promise.all(children.splice(0).map((process) => process.kill()));
    await app?.close();
    await dropSchema(schema);
    await dropPrefix(prefix);
  });

  it('a relay killed between sending and marking sent: the batch is sent again and takes effect once', async () => {
    app = await startApp('express', { schema, controllers: [OutboxController], idempotency: { outbox: { connection: REDIS_URL, prefix, relay: false } } });
    const labels = Array.from({ length: 20 }, () => randomUUID());
    // Jobs removed as they complete: a re-send then makes new jobs, which BullMQ's job id alone cannot stop.
    await deliver(labels, { removeOnComplete: true });
    const worker = fulfilmentWorker(app.service, REDIS_URL, prefix);
    workers.push(worker);
    let runs = 0;
    worker.on('completed', () => (runs += 1));

    const crashing = await child('outbox-relay', { KILL_AFTER_SEND: '1' });
    await exited(crashing);
    expect(crashing.output()).toContain('sent 20');
    expect(countBy(await rows(), (row) => `${row.sent}:${row.sends}`)).toEqual({ 'false:0': 20 });
    await eventually('the first sends ran', () => Promise.resolve(runs >= 20));

    await child('outbox-relay', {});
    await eventually('the batch was sent again and ran again', () => Promise.resolve(runs >= 40));
    expect(new Set(await effectCounts(labels, 'fulfil'))).toEqual(new Set([1]));
    expect(countBy(await rows(), (row) => `${row.sent}:${row.sends}:${row.processed}`)).toEqual({ 'true:1:true': 20 });
  });

  it('a worker killed after its effect and before acknowledging: the stalled job runs again without effect', async () => {
    app = await startApp('express', {
      schema,
      controllers: [OutboxController],
      idempotency: { outbox: { connection: REDIS_URL, prefix, pollInterval: '50ms' } },
    });
    const labels = Array.from({ length: 5 }, () => randomUUID());
    const dying = await child('outbox-worker', { KILL_AFTER_EFFECT: '1' });
    await deliver(labels);
    await exited(dying);
    const killedAfter = /effect (\S+)/.exec(dying.output())?.[1];
    expect(killedAfter).toBeDefined();
    expect((await effectCounts(labels, 'fulfil')).reduce((sum, count) => sum + count, 0)).toBe(1);

    const worker = fulfilmentWorker(app.service, REDIS_URL, prefix);
    workers.push(worker);
    const completed: string[] = [];
    worker.on('completed', (job) => completed.push(job.id!));
    await eventually(
      'every job completed, the stalled one included',
      () => Promise.resolve(completed.includes(killedAfter!) && completed.length >= labels.length),
      30_000,
    );
    expect(new Set(await effectCounts(labels, 'fulfil'))).toEqual(new Set([1]));
  }, 60_000);

  it('with Redis and the relay killed and restarted at random during a burst of duplicates, every event takes effect once', async () => {
    const redis = await OwnRedis.start();
    try {
      app = await startApp('express', {
        schema,
        controllers: [OutboxController],
        idempotency: { outbox: { connection: redis.url, prefix, relay: false } },
      });
      const worker = fulfilmentWorker(app.service, redis.url, prefix);
      workers.push(worker);
      const relayEnv = { REDIS_URL: redis.url, REDELIVER_AFTER: '1s' };
      let relay = await child('outbox-relay', relayEnv);

      const labels = Array.from({ length: 40 }, () => randomUUID());
      const deliveries = labels.flatMap((label) => Array.from({ length: 5 }, () => label)).sort(() => Math.random() - 0.5);
      let chaos = true;
      const faults = (async () => {
        while (chaos) {
          await sleep(200 + Math.random() * 400);
          if (Math.random() < 0.5) {
            await relay.kill();
            await sleep(Math.random() * 200);
            relay = await child('outbox-relay', relayEnv);
          } else {
            await redis.kill();
            await sleep(Math.random() * 300);
            await redis.restart();
          }
        }
      })();
      const answers = await burst(deliveries.length, async (index) => {
        await sleep(index * 15);
        return send(app.url, '/outbox/events', { key: deliveries[index], body: { label: deliveries[index] } });
      });
      chaos = false;
      await faults;
      expect(answers.filter((answer) => answer.status >= 500)).toEqual([]);

      await eventually('every event was fulfilled', async () => (await effectCounts(labels, 'fulfil')).every((count) => count >= 1), 60_000).catch(
        async (error: Error) => {
          // Say where the missing ones are: unsent, set aside, or sent and never run.
          const states =
            await sql(`SELECT sends, sent_at IS NOT NULL AS sent, failed_at IS NOT NULL AS failed, processed_at IS NOT NULL AS processed, last_error
                                    FROM "${schema}".idempotency_outbox WHERE processed_at IS NULL`);
          throw new Error(`${error.message}; unprocessed rows: ${JSON.stringify(states)}`);
        },
      );
      await sleep(1500); // a late duplicate would show here
      expect(new Set(await effectCounts(labels, 'fulfil'))).toEqual(new Set([1]));
      expect(new Set(await effectCounts(labels, 'order'))).toEqual(new Set([1]));
      await eventually('no row is left unsent or unprocessed', async () => (await rows()).every((row) => row.sent && row.processed), 20_000);
      expect(await rows()).toHaveLength(labels.length);
    } finally {
      await Promise.all(workers.splice(0).map((worker) => worker.close()));
      await Promise.all(children.splice(0).map((process) => process.kill()));
      await app?.close();
      app = undefined as unknown as TestApp;
      await redis.kill();
    }
  }, 120_000);
});
