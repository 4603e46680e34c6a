/**
 * A JetStream consumer that the message suites run as child processes: CONSUMERS pull consumers of the durable
 * DURABLE on STREAM, through the example transport. It prints `acked <label>` for every ack it sends, and dies
 * by SIGKILL at the ack of a first delivery that asks for it (`crashAtAck`). BYPASS=1 runs the same handlers
 * without @Idempotent() (the transport acks them), to show what the claim prevents.
 */
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, Payload } from '@nestjs/microservices';
import { InjectDataSource, TypeOrmModule } from '@nestjs/typeorm';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource, type EntityManager } from 'typeorm';
import { IdempotencyModule, Idempotent, type IdempotentMessageOptions, IdempotentTransaction, idempotencyMigrations } from 'nestjs-idempotency';
import type { JsMsg } from '@nats-io/jetstream';
import { type JetStreamContext, JetStreamServer } from '../../examples/jetstream/jetstream.server';

interface Work {
  label: string;
  holdMs?: number;
  failOnce?: boolean;
  crashAtAck?: boolean;
  crashAfterEffect?: boolean;
}

const schema = process.env.SCHEMA ?? 'public';
const stream = process.env.STREAM ?? 'MESSAGES';
const bypass = process.env.BYPASS === '1';

const idempotent = (options: IdempotentMessageOptions): MethodDecorator => (bypass ? () => undefined : Idempotent(options));
const transaction = (): ParameterDecorator => (bypass ? () => undefined : IdempotentTransaction());

/** Prints each ack of a delivery, and dies at the first delivery's ack when the message asks for it. */
class WatchedJetStreamServer extends JetStreamServer {
  protected override handle(message: JsMsg): Promise<void> {
    watchAck(message, message.json<Work>());
    return super.handle(message);
  }
}

function watchAck(message: JsMsg, work: Work): void {
  const ack = message.ack.bind(message);
  message.ack = () => {
    if (work.crashAtAck && !message.redelivered) process.kill(process.pid, 'SIGKILL');
    ack();
    process.stdout.write(`acked ${work.label}\n`);
  };
}

@Controller()
class JetStreamConsumerController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  private async record(table: 'effects' | 'runs', label: string, manager: EntityManager = this.dataSource.manager): Promise<void> {
    await manager.query(`INSERT INTO "${schema}".${table} (label, pid) VALUES ($1, $2)`, [label, process.pid]);
  }

  // <string>: Nest 12's first overload of @EventPattern() would type the handler's other parameters as unknown.
  @EventPattern<string>(`${stream}.effect`)
  @idempotent({ ack: true, lease: '2s' })
  async effect(@Payload() work: Work, @Ctx() context: JetStreamContext) {
    await this.record('runs', work.label);
    if (work.failOnce && !context.getMessage().redelivered) throw new Error('failing the first delivery');
    if (work.holdMs) await sleep(work.holdMs);
    await this.record('effects', work.label);
  }

  /** Keyed by a field of the payload: copies published with ids of their own (JetStream drops same-id copies itself). */
  @EventPattern<string>(`${stream}.by-label`)
  @idempotent({ ack: true, key: { path: 'label' } })
  async byLabel(@Payload() work: Work) {
    if (work.holdMs) await sleep(work.holdMs);
    await this.record('effects', work.label);
  }

  @EventPattern<string>(`${stream}.effect-tx`)
  @idempotent({ ack: true, transaction: true })
  async effectInTransaction(@Payload() work: Work, @Ctx() context: JetStreamContext, @transaction() em?: EntityManager) {
    await this.record('effects', work.label, em);
    if (work.crashAfterEffect && !context.getMessage().redelivered) process.kill(process.pid, 'SIGKILL');
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      schema,
      migrations: [...idempotencyMigrations],
      migrationsRun: true,
    }),
    IdempotencyModule.forRoot({ purgeInterval: 0 }),
  ],
  controllers: [JetStreamConsumerController],
})
class JetStreamConsumerModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(JetStreamConsumerModule, { logger: ['error', 'warn'] });
  for (let consumer = 0; consumer < Number(process.env.CONSUMERS ?? 1); consumer++) {
    const strategy = new WatchedJetStreamServer({
      servers: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
      stream,
      durable: process.env.DURABLE ?? 'consumer',
    });
    // The app's interceptors (IdempotencyModule's among them) apply to a hybrid app's microservices only so.
    app.connectMicroservice({ strategy }, { inheritAppConfig: true });
  }
  await app.startAllMicroservices();
  await app.init();
  process.stdout.write(`listening ${process.pid}\n`);
}

void main();
