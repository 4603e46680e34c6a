/**
 * Time from the commit of a transaction that enqueued a job (through the outbox) to the start of that
 * job in a BullMQ worker, p50 and p99, under light and heavy load, against the local PostgreSQL and Redis.
 *
 *   npm run bench:outbox
 *
 * Two relay placements: in the process whose transaction committed (woken by the commit), and in
 * another instance (it finds the rows by polling, every `pollInterval`).
 */
import 'reflect-metadata';
import { Body, Controller, HttpCode, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import { Worker } from 'bullmq';
import IORedis from 'ioredis';
import { randomBytes, randomUUID } from 'node:crypto';
import { DataSource, type EntityManager, type QueryRunner } from 'typeorm';
import { Idempotent, IdempotentTransaction, IdempotencyModule, idempotencyMigrations, JobOutbox, OutboxRelay } from 'nestjs-idempotency';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const POLL_INTERVAL = '500ms';

const committedAt = new Map<string, number>();
const sentAt = new Map<string, number>();
const startedAt = new Map<string, number>();
const jobsOf = new WeakMap<QueryRunner, string[]>();

@Controller()
class EventsController {
  constructor(private readonly outbox: JobOutbox) {}

  @Post('events')
  @HttpCode(200)
  @Idempotent({ transaction: true })
  async event(@Body() body: { id: string }, @IdempotentTransaction() em: EntityManager) {
    const jobId = await this.outbox.enqueue(em, { queue: 'bench', name: 'work', data: { id: body.id }, options: { removeOnComplete: true } });
    jobsOf.set(em.queryRunner!, [...(jobsOf.get(em.queryRunner!) ?? []), jobId]);
    return { jobId };
  }
}

/** The module's relay, plus a clock on the moment each batch was handed to BullMQ. */
class TimedRelay extends OutboxRelay {
  protected override afterSend(jobIds: string[]): Promise<void> {
    const now = Date.now();
    for (const jobId of jobIds) sentAt.set(jobId, now);
    return Promise.resolve();
  }
}

async function scenario(label: string, relayHere: boolean, requests: number, concurrency: number) {
  const schema = `bench_outbox_${randomBytes(4).toString('hex')}`;
  const prefix = `bench_${randomBytes(4).toString('hex')}`;
  const admin = await new DataSource({ type: 'postgres', url: DATABASE_URL }).initialize();
  await admin.query(`CREATE SCHEMA "${schema}"`);

  @Module({
    imports: [
      TypeOrmModule.forRoot({ type: 'postgres', url: DATABASE_URL, schema, migrations: [...idempotencyMigrations], migrationsRun: true, extra: { max: 20 } }),
      IdempotencyModule.forRoot({ purgeInterval: 0, outbox: { connection: REDIS_URL, prefix, relay: false } }),
    ],
    controllers: [EventsController],
  })
  class BenchModule {}

  const app = await NestFactory.create(BenchModule, { logger: ['error'] });
  await app.listen(0, '127.0.0.1');
  const url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
  const dataSource = app.get<DataSource>(getDataSourceToken());
  dataSource.subscribers.push({
    afterTransactionCommit: ({ queryRunner }: { queryRunner: QueryRunner }) => {
      for (const jobId of jobsOf.get(queryRunner) ?? []) committedAt.set(jobId, Date.now());
      jobsOf.delete(queryRunner);
    },
  });
  // Here: woken by this process's commits, as IdempotencyModule wires it. Elsewhere: no commit here wakes it.
  const relay = new TimedRelay(dataSource, { connection: REDIS_URL, prefix, pollInterval: POLL_INTERVAL });
  if (relayHere) app.get(JobOutbox).onCommit(() => relay.wake());
  relay.start();
  const worker = new Worker('bench', (job) => Promise.resolve(void startedAt.set(job.id!, Date.now())), {
    connection: { url: REDIS_URL, maxRetriesPerRequest: null },
    prefix,
    concurrency: 50,
  });
  await worker.waitUntilReady();

  const drive = async (count: number, parallel: number) => {
    let next = 0;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < count) {
          next += 1;
          const response = await fetch(`${url}/events`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID() },
            body: JSON.stringify({ id: randomUUID() }),
          });
          if (response.status !== 200) throw new Error(`unexpected ${response.status}`);
          await response.arrayBuffer();
        }
      }),
    );
    const deadline = Date.now() + 30_000;
    const allStarted = () => [...committedAt.keys()].every((jobId) => startedAt.has(jobId));
    while ((committedAt.size < count || !allStarted()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  };
  // Warm-up, not counted: the first send loads BullMQ and connects to Redis.
  await drive(20, 1);
  committedAt.clear();
  startedAt.clear();
  sentAt.clear();
  await drive(requests, concurrency);

  const measured = [...committedAt].filter(([jobId]) => startedAt.has(jobId));
  const latencies = measured.map(([jobId, at]) => startedAt.get(jobId)! - at).sort((a, b) => a - b);
  const quantile = (values: number[], q: number) => values[Math.min(values.length - 1, Math.floor(q * values.length))];
  const toSent = measured.map(([jobId, at]) => (sentAt.get(jobId) ?? at) - at).sort((a, b) => a - b);
  const row = {
    scenario: label,
    jobs: committedAt.size,
    started: measured.length,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    max: latencies.at(-1),
    sentP50: quantile(toSent, 0.5),
  };

  await worker.close();
  await relay.stop();
  // The run's BullMQ keys go with it.
  const redis = new IORedis(REDIS_URL);
  for await (const keys of redis.scanStream({ match: `${prefix}:*`, count: 500 }) as AsyncIterable<string[]>) {
    if (keys.length > 0) await redis.del(...keys);
  }
  redis.disconnect();
  await app.close();
  await admin.query(`DROP SCHEMA "${schema}" CASCADE`);
  await admin.destroy();
  return row;
}

async function main(): Promise<void> {
  const rows = [];
  for (const relayHere of [true, false]) {
    const placement = relayHere ? 'relay in the committing process' : `relay in another instance (poll ${POLL_INTERVAL})`;
    rows.push(await scenario(`light (1 at a time, 200), ${placement}`, relayHere, 200, 1));
    rows.push(await scenario(`heavy (50 at a time, 2000), ${placement}`, relayHere, 2000, 50));
  }
  console.log('\nCommit to job start, ms (PostgreSQL and Redis on this machine; load generated in the same process)\n');
  console.log('| scenario | jobs started | p50 | p99 | max | p50 commit to sent |\n| --- | --- | --- | --- | --- | --- |');
  for (const row of rows) console.log(`| ${row.scenario} | ${row.started}/${row.jobs} | ${row.p50} | ${row.p99} | ${row.max} | ${row.sentP50} |`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
