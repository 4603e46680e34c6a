/**
 * The app that `npm run bench` starts in a process of its own: one business write (an INSERT) behind
 * each way of running it, so that the difference between two routes is what the library adds.
 *
 *   SCHEMA=bench POOL=10 node dist/bench/app.js   (prints "listening <port>")
 *   STORE=redis REDIS_URL=... KEY_PREFIX=...       (records in Redis; no transaction route)
 *   ENGINE=mariadb MARIADB_URL=... SCHEMA=<database> (the app and its records on MariaDB: the MySQL store)
 *   ADAPTER=fastify                                 (the app on Fastify rather than Express)
 *
 * `GET /queries` tells how many statements the app has sent to PostgreSQL so far: the driver divides the
 * difference by the requests of a scenario to get its round trips per request. They are counted on
 * node-postgres' client, the one way to the server for TypeORM and for the library's named statements; on
 * MariaDB, on mysql2's connection, through which TypeORM sends every statement.
 */
import 'reflect-metadata';
import { Body, Controller, Get, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { InjectDataSource, TypeOrmModule } from '@nestjs/typeorm';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Connection as MySqlConnection } from 'mysql2';
import { Client } from 'pg';
import { DataSource, type EntityManager } from 'typeorm';
import { IdempotencyModule, Idempotent, IdempotentTransaction, idempotencyMigrations, mysqlIdempotencyMigrations } from 'nestjs-idempotency';
import { insertOnPool, type Order, PostgresFloorController, RedisFloorController } from './floor';

const schema = process.env.SCHEMA ?? 'public';
const pool = Number(process.env.POOL ?? 10);
const mariadb = process.env.ENGINE === 'mariadb';

const redisStore = process.env.STORE === 'redis';

let statements = 0;
/** Counts each call of a driver's `query` before it runs. */
function countCalls<T extends { query: (...args: never[]) => unknown }>(prototype: T): void {
  // Re-applied below with the client as `this`.
  const query = prototype.query as (...args: unknown[]) => unknown;
  const counted = function (this: T, ...args: unknown[]) {
    statements++;
    return query.apply(this, args);
  };
  prototype.query = counted;
}
countCalls(mariadb ? MySqlConnection.prototype : Client.prototype);

@Controller()
class OrdersController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  protected async insert(order: Order, manager: EntityManager = this.dataSource.manager) {
    if (redisStore) return insertOnPool(this.dataSource, order);
    // MariaDB has RETURNING too (10.5): the same one round trip on both.
    const sql = mariadb
      ? 'INSERT INTO orders (ref, amount) VALUES (?, ?) RETURNING id'
      : `INSERT INTO "${schema}".orders (ref, amount) VALUES ($1, $2) RETURNING id`;
    const [row] = await manager.query<Array<{ id: number }>>(sql, [order.ref, order.amount]);
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
    // The process' CPU time in µs: finer than /proc's 10 ms ticks, for A/B comparisons of short rounds.
    const { user, system } = process.cpuUsage();
    return { statements, cpuMicros: user + system };
  }
}

/** Transaction mode, which the SQL stores have (PostgreSQL, MySQL and MariaDB). */
@Controller()
class TransactionController extends OrdersController {
  @Post('transaction')
  @Idempotent({ transaction: true })
  transaction(@Body() order: Order, @IdempotentTransaction() em: EntityManager) {
    return this.insert(order, em);
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot(
      mariadb
        ? {
            type: 'mariadb',
            url: `${process.env.MARIADB_URL ?? 'mysql://root@127.0.0.1:3306'}/${schema}`,
            migrations: [...mysqlIdempotencyMigrations],
            migrationsRun: true,
            poolSize: pool,
          }
        : {
            type: 'postgres',
            url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
            schema,
            migrations: [...idempotencyMigrations],
            migrationsRun: true,
            extra: { max: pool },
          },
    ),
    // REPLAY_CACHE=off: every replay reads the database, as the first replay of a key on an instance does.
    IdempotencyModule.forRoot({
      purgeInterval: 0,
      replayCache: process.env.REPLAY_CACHE === 'off' ? false : undefined,
      store: redisStore
        ? { type: 'redis', connection: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', prefix: `${process.env.KEY_PREFIX}-ours:` }
        : undefined,
    }),
  ],
  // The floors (bench/floor.ts): on PostgreSQL and on Redis, beside the library's routes.
  controllers: redisStore ? [OrdersController, RedisFloorController] : mariadb ? [TransactionController] : [TransactionController, PostgresFloorController],
})
class BenchAppModule {}

async function main(): Promise<void> {
  const options = { logger: ['error', 'warn'] as Array<'error' | 'warn'> };
  const app =
    process.env.ADAPTER === 'fastify'
      ? await NestFactory.create(BenchAppModule, new FastifyAdapter(), options)
      : await NestFactory.create(BenchAppModule, options);
  app.enableShutdownHooks();
  await app.init();
  if (process.env.ADAPTER === 'fastify') await (app.getHttpAdapter().getInstance() as { ready(): Promise<unknown> }).ready();
  // A backlog for the hot key's 1,000 connections at once: past Node's default of 511, the connections the accept
  // queue drops come again only after TCP's one-second retransmission, which the scenario would time instead.
  const server = app.getHttpServer() as Server;
  await new Promise<void>((resolve) => server.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1', backlog: 2048 }, resolve));
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
}

void main();
