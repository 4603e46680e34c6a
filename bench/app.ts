/**
 * The app that `npm run bench` starts in a process of its own: one business write (an INSERT) behind
 * each way of running it, so that the difference between two routes is what the library adds.
 *
 *   SCHEMA=bench POOL=10 node dist/bench/app.js   (prints "listening <port>")
 *   STORE=redis REDIS_URL=... KEY_PREFIX=...       (records in Redis; no transaction route)
 *
 * `GET /queries` tells how many statements the app has sent to PostgreSQL so far: the driver divides the
 * difference by the requests of a scenario to get its round trips per request. They are counted on
 * node-postgres' client, the one way to the server for TypeORM and for the library's named statements.
 */
import 'reflect-metadata';
import { Body, Controller, Get, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { InjectDataSource, TypeOrmModule } from '@nestjs/typeorm';
import { Client } from 'pg';
import { DataSource, type EntityManager } from 'typeorm';
import { IdempotencyModule, Idempotent, IdempotentTransaction, idempotencyMigrations } from 'nestjs-idempotency';

const schema = process.env.SCHEMA ?? 'public';
const pool = Number(process.env.POOL ?? 10);

let statements = 0;
// eslint-disable-next-line @typescript-eslint/unbound-method -- re-applied below with the client as `this`
const query: (...args: unknown[]) => unknown = Client.prototype.query;
Client.prototype.query = function (this: Client, ...args: unknown[]) {
  statements++;
  return query.apply(this, args);
} as typeof Client.prototype.query;

interface Order {
  ref: string;
  amount: number;
}

@Controller()
class OrdersController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  protected async insert(order: Order, manager: EntityManager = this.dataSource.manager) {
    const [row] = await manager.query<Array<{ id: number }>>(`INSERT INTO "${schema}".orders (ref, amount) VALUES ($1, $2) RETURNING id`, [
      order.ref,
      order.amount,
    ]);
    return { id: row.id, ref: order.ref, amount: order.amount };
  }

  @Post('baseline')
  baseline(@Body() order: Order) {
    return this.insert(order);
  }

  @Post('lease')
  @Idempotent()
  lease(@Body() order: Order) {
    return this.insert(order);
  }

  @Post('wait')
  @Idempotent({ onInFlight: 'wait' })
  wait(@Body() order: Order) {
    return this.insert(order);
  }

  @Get('queries')
  queries() {
    return { statements };
  }
}

/** Transaction mode, which only the PostgreSQL store has. */
@Controller()
class TransactionController extends OrdersController {
  @Post('transaction')
  @Idempotent({ transaction: true })
  transaction(@Body() order: Order, @IdempotentTransaction() em: EntityManager) {
    return this.insert(order, em);
  }
}

const redisStore = process.env.STORE === 'redis';

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      schema,
      migrations: [...idempotencyMigrations],
      migrationsRun: true,
      extra: { max: pool },
    }),
    // REPLAY_CACHE=off: every replay reads the database, as the first replay of a key on an instance does.
    IdempotencyModule.forRoot({
      purgeInterval: 0,
      replayCache: process.env.REPLAY_CACHE === 'off' ? false : undefined,
      store: redisStore
        ? { type: 'redis', connection: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', prefix: `${process.env.KEY_PREFIX}-ours:` }
        : 'postgres',
    }),
  ],
  controllers: [redisStore ? OrdersController : TransactionController],
})
class BenchAppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(BenchAppModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
  process.stdout.write(`listening ${new URL(await app.getUrl()).port}\n`);
}

void main();
