/**
 * A BullMQ worker in a process of its own, for the crash suites: its effect commits through
 * `IdempotencyService.runJob`. With KILL_AFTER_EFFECT=1 it kills itself (SIGKILL) after the effect has
 * committed and before BullMQ hears that the job completed.
 */
import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { Worker } from 'bullmq';
import { IdempotencyModule, IdempotencyService } from 'nestjs-idempotency';

const schema = process.env.SCHEMA ?? 'public';
const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

@Module({
  imports: [
    TypeOrmModule.forRoot({ type: 'postgres', url: process.env.DATABASE_URL, schema, extra: { max: 4 } }),
    IdempotencyModule.forRoot({ purgeInterval: 0, outbox: { connection: redisUrl, relay: false } }),
  ],
})
class WorkerModule {}

async function main(): Promise<void> {
  const app = await NestFactory.createApplicationContext(WorkerModule, { logger: ['error'] });
  const idempotency = app.get(IdempotencyService);
  const worker = new Worker(
    'fulfilment',
    async (job) => {
      const result = await idempotency.runJob(job, async (em) => {
        await em.query(`INSERT INTO "${schema}".effects (label) VALUES ($1)`, [`fulfil:${(job.data as { label: string }).label}`]);
        return { fulfilled: true };
      });
      if (process.env.KILL_AFTER_EFFECT === '1') {
        process.stdout.write(`effect ${job.id}\n`);
        process.kill(process.pid, 'SIGKILL');
      }
      return result;
    },
    { connection: { url: redisUrl, maxRetriesPerRequest: null }, prefix: process.env.PREFIX, lockDuration: 1000, stalledInterval: 1000, concurrency: 1 },
  );
  worker.on('error', () => undefined);
  await worker.waitUntilReady();
  process.stdout.write('ready 0\n');
}

void main();
