/**
 * A RabbitMQ consumer that the message suites run as child processes (CONSUMERS competing consumers on QUEUE,
 * manual acknowledgement). It prints `acked <messageId>` for every ack it sends, and dies by SIGKILL at the ack
 * of a first delivery that asks for it (`crashAtAck`), or inside a transaction handler (`crashAfterEffect`).
 * BYPASS=1 runs the same handlers without @Idempotent(), acking themselves, to show what the claim prevents.
 */
import 'reflect-metadata';
import { Controller, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, MessagePattern, Payload, RmqContext, RpcException, Transport } from '@nestjs/microservices';
import { InjectDataSource, TypeOrmModule } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DataSource, type EntityManager } from 'typeorm';
import {
  type ClaimIdentity,
  IdempotencyKey,
  IdempotencyModule,
  Idempotent,
  type IdempotentMessageOptions,
  IdempotentTransaction,
  idempotencyMigrations,
} from 'nestjs-idempotency';

// The channel class that amqp-connection-manager's channels are made of (not an exported path of amqplib).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Channel } = require(join(dirname(require.resolve('amqplib')), 'lib/channel_model.js')) as {
  Channel: { prototype: { ack(this: unknown, message: Delivery): void } };
};

interface Delivery {
  content: Buffer;
  fields: { redelivered: boolean };
  properties: { messageId?: string };
}

interface Work {
  label: string;
  holdMs?: number;
  failOnce?: boolean;
  crashAtAck?: boolean;
  crashAfterEffect?: boolean;
  order?: { id: string };
}

const schema = process.env.SCHEMA ?? 'public';
const bypass = process.env.BYPASS === '1';

// Wrapped, not detached: it is called with the channel as this.
// eslint-disable-next-line @typescript-eslint/unbound-method
const ack = Channel.prototype.ack;
Channel.prototype.ack = function (this: unknown, message: Delivery) {
  const work = (JSON.parse(message.content.toString()) as { data?: Work }).data;
  if (work?.crashAtAck && !message.fields.redelivered) process.kill(process.pid, 'SIGKILL');
  ack.call(this, message);
  process.stdout.write(`acked ${message.properties.messageId ?? '-'}\n`);
};

/** `@Idempotent(options)`, or nothing with BYPASS=1. */
const idempotent = <TContext = unknown>(options: IdempotentMessageOptions<unknown, TContext>): MethodDecorator =>
  bypass ? () => undefined : Idempotent(options);

/** The claim's EntityManager, or nothing with BYPASS=1 (the handler then writes through the plain one). */
const transaction = (): ParameterDecorator => (bypass ? () => undefined : IdempotentTransaction());

@Controller()
class ConsumerController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  private async record(table: 'effects' | 'runs', label: string, manager: EntityManager = this.dataSource.manager): Promise<void> {
    await manager.query(`INSERT INTO "${schema}".${table} (label, pid) VALUES ($1, $2)`, [label, process.pid]);
  }

  /** Without the claim the handler acks itself, as a manual-ack consumer does. */
  private settle(context: RmqContext): void {
    if (bypass) (context.getChannelRef() as { ack(message: unknown): void }).ack(context.getMessage());
  }

  // <string>: Nest 12's first overload of @EventPattern() would type the handler's other parameters as unknown.
  @EventPattern<string>('effect')
  @idempotent({ ack: true, lease: '2s' })
  async effect(@Payload() work: Work, @Ctx() context: RmqContext) {
    await this.record('runs', work.label);
    if (work.failOnce && !(context.getMessage() as Delivery).fields.redelivered) throw new Error('failing the first delivery');
    if (work.holdMs) await sleep(work.holdMs);
    await this.record('effects', work.label);
    this.settle(context);
  }

  @EventPattern<string>('effect-tx')
  @idempotent({ ack: true, transaction: true })
  async effectInTransaction(@Payload() work: Work, @Ctx() context: RmqContext, @transaction() em?: EntityManager) {
    await this.record('effects', work.label, em);
    if (work.crashAfterEffect && !(context.getMessage() as Delivery).fields.redelivered) process.kill(process.pid, 'SIGKILL');
    if (work.holdMs) await sleep(work.holdMs);
    this.settle(context);
  }

  @EventPattern<string>('keyed')
  @idempotent({ ack: true, key: { path: 'order.id' } })
  async keyed(@Payload() work: Work, @Ctx() context: RmqContext) {
    await this.record('effects', work.label);
    this.settle(context);
  }

  @EventPattern<string>('hashed')
  @idempotent({ ack: true, key: 'payload-hash' })
  async hashed(@Payload() work: Work, @Ctx() context: RmqContext) {
    await this.record('effects', work.label);
    this.settle(context);
  }

  @EventPattern<string>('by-header')
  @idempotent<RmqContext>({
    ack: true,
    key: (_data, context) => (context.getMessage() as { properties: { headers?: Record<string, unknown> } }).properties.headers?.['x-event-id'],
  })
  async byHeader(@Payload() work: Work, @Ctx() context: RmqContext) {
    await this.record('effects', work.label);
    this.settle(context);
  }

  @MessagePattern('quote')
  @idempotent({ ack: true })
  async quote(@Payload() work: Work & { amount: number }, @Ctx() context: RmqContext) {
    await this.record('effects', work.label);
    if (work.holdMs) await sleep(work.holdMs);
    this.settle(context);
    return { quoteId: randomUUID(), amount: work.amount * 1.1, at: new Date(), lines: [1, 2.5, 'x', null], pid: process.pid };
  }

  /** The claim's identity, as a handler that calls a downstream API reads it. */
  @MessagePattern('identity')
  @idempotent({ ack: true, key: { path: 'label' } })
  identity(@Ctx() context: RmqContext, @IdempotencyKey() claim?: ClaimIdentity) {
    this.settle(context);
    return claim && { scope: claim.scope, key: claim.key, attempt: claim.attempt, charge: claim.derive('charge') };
  }

  @MessagePattern('refuse')
  @idempotent({ ack: true })
  async refuse(@Payload() work: Work, @Ctx() context: RmqContext) {
    await this.record('effects', work.label);
    this.settle(context);
    throw new RpcException({ status: 'error', code: 'OUT_OF_STOCK', ticket: randomUUID() });
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
  controllers: [ConsumerController],
})
class ConsumerModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(ConsumerModule, { logger: ['error', 'warn'] });
  const queue = process.env.QUEUE ?? 'messages';
  for (let consumer = 0; consumer < Number(process.env.CONSUMERS ?? 1); consumer++) {
    app.connectMicroservice(
      {
        transport: Transport.RMQ,
        options: {
          urls: [process.env.RABBITMQ_URL ?? 'amqp://guest:guest@127.0.0.1:5672'],
          queue,
          noAck: false,
          queueOptions: { durable: false, arguments: { 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': `${queue}.dead` } },
        },
      },
      // The app's interceptors (IdempotencyModule's among them) apply to a hybrid app's microservices only so.
      { inheritAppConfig: true },
    );
  }
  await app.startAllMicroservices();
  await app.init();
  process.stdout.write(`listening ${process.pid}\n`);
}

void main();
