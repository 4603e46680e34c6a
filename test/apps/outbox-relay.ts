/**
 * An outbox relay in a process of its own, for the crash suites. With KILL_AFTER_SEND=1 it kills itself
 * (SIGKILL) after handing its first batch to BullMQ and before marking it sent.
 */
import 'reflect-metadata';
import { DataSource } from 'typeorm';
import { OutboxRelay } from 'nestjs-idempotency';

class CrashingRelay extends OutboxRelay {
  protected override afterSend(jobIds: string[]): Promise<void> {
    if (process.env.KILL_AFTER_SEND === '1') {
      process.stdout.write(`sent ${jobIds.length}\n`);
      process.kill(process.pid, 'SIGKILL');
    }
    return Promise.resolve();
  }
}

async function main(): Promise<void> {
  const dataSource = await new DataSource({
    type: 'postgres',
    url: process.env.DATABASE_URL,
    schema: process.env.SCHEMA,
    extra: { max: 2 },
  }).initialize();
  const relay = new CrashingRelay(dataSource, {
    connection: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    prefix: process.env.PREFIX,
    pollInterval: '50ms',
    ...(process.env.REDELIVER_AFTER ? { redeliverAfter: process.env.REDELIVER_AFTER, sendTimeout: '500ms', maxSends: 100 } : {}),
  });
  relay.start();
  process.stdout.write('ready 0\n');
}

void main();
