/**
 * The peer `npm run bench` measures next to nestjs-idempotency: @node-idempotency/nestjs with its Redis
 * adapter, on NestJS 10 (the major it supports), doing the same business write (one INSERT, pool of
 * POOL connections). `POST /baseline` is the same route without the peer's interceptor.
 *
 *   SCHEMA=bench REDIS_URL=redis://127.0.0.1:6379 node bench/peer/app.js   (prints "listening <port>")
 *   PEER_MODULES=bench/peer/nest12   the same app on the packages installed there: the peer on NestJS 12
 *
 * Plain JavaScript with the decorators applied as calls, so that this folder needs no compiler.
 */
const modules = require('node:path').resolve(process.env.PEER_MODULES ?? __dirname);
/** Each package from PEER_MODULES' node_modules: the peer then loads the NestJS installed beside it. */
const load = (name) => require(require.resolve(name, { paths: [modules] }));
load('reflect-metadata');
const { Body, Controller, Module, Post } = load('@nestjs/common');
const { NestFactory } = load('@nestjs/core');
const { Idempotent, NodeIdempotencyModule } = load('@node-idempotency/nestjs');
const { Pool } = load('pg');

const schema = process.env.SCHEMA ?? 'public';
const pool = new Pool({
  connectionString: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  max: Number(process.env.POOL ?? 10),
});

class OrdersController {
  async insert(order) {
    const { rows } = await pool.query(`INSERT INTO "${schema}".orders (ref, amount) VALUES ($1, $2) RETURNING id`, [order.ref, order.amount]);
    return { id: rows[0].id, ref: order.ref, amount: order.amount };
  }

  baseline(order) {
    return this.insert(order);
  }

  peer(order) {
    return this.insert(order);
  }
}

function route(method, path, ...extra) {
  const descriptor = Object.getOwnPropertyDescriptor(OrdersController.prototype, method);
  for (const decorate of [Post(path), ...extra]) decorate(OrdersController.prototype, method, descriptor);
  Body()(OrdersController.prototype, method, 0);
}
route('baseline', 'baseline');
route('peer', 'peer', Idempotent());
Controller()(OrdersController);

class PeerBenchModule {}
Module({
  imports: [
    NodeIdempotencyModule.forRootAsync({
      storage: { adapter: 'redis', options: { url: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' } },
      cacheKeyPrefix: process.env.KEY_PREFIX ?? 'bench-peer',
    }),
  ],
  controllers: [OrdersController],
})(PeerBenchModule);

async function main() {
  const app = await NestFactory.create(PeerBenchModule, { logger: ['error', 'warn'] });
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 0), '127.0.0.1');
  process.stdout.write(`listening ${new URL(await app.getUrl()).port}\n`);
}

void main();
