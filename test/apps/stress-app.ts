/**
 * The app the reliability suites (test/stress) run as separate processes, kill, starve and fuzz.
 * Each route writes one effect row per handler run, so that the suites count runs in the database.
 *
 * Environment: DATABASE_URL, SCHEMA, POOL (connections, default 10), WAIT_TIMEOUT (ms, default 3000),
 * HANDLER_MS (time each handler takes after its effect, default 0), LEASE (of /wait and /lease, default 2s), QUIET=1 (no logs),
 * STORE=redis with REDIS_URL and KEY_PREFIX (records in Redis; no /tx route, which needs PostgreSQL);
 * REDIS_CLUSTER (JSON: { nodes, natMap }) instead of REDIS_URL for a Redis Cluster, and WAIT_REPLICAS
 * (JSON: waitForReplicas) for the durability option.
 */
import 'reflect-metadata';
import { All, Body, Controller, Get, Headers, HttpCode, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { InjectDataSource, TypeOrmModule } from '@nestjs/typeorm';
import { setTimeout as sleep } from 'node:timers/promises';
import { Cluster, type ClusterOptions } from 'ioredis';
import { DataSource, type EntityManager } from 'typeorm';
import { IdempotencyModule, Idempotent, IdempotentTransaction, idempotencyMigrations } from 'nestjs-idempotency';

const schema = process.env.SCHEMA ?? 'public';
const waitTimeout = Number(process.env.WAIT_TIMEOUT ?? 3000);
const handlerMs = Number(process.env.HANDLER_MS ?? 0);
const lease = process.env.LEASE ?? '2s';

/** When each handler started (ms since the epoch): a handler must never start without a claim. */
const starts: number[] = [];

@Controller()
class StressController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  protected async effect(mode: string, key: string, manager: EntityManager = this.dataSource.manager) {
    starts.push(Date.now());
    await manager.query(`INSERT INTO "${schema}".effects (mode, key, pid) VALUES ($1, $2, $3)`, [mode, key, process.pid]);
    if (handlerMs > 0) await sleep(handlerMs);
    return { mode, key, pid: process.pid };
  }

  @Post('wait')
  @Idempotent({ onInFlight: 'wait', waitTimeout, lease })
  wait(@Headers('idempotency-key') key: string) {
    return this.effect('wait', key);
  }

  @Post('lease')
  @Idempotent({ lease })
  lease(@Headers('idempotency-key') key: string) {
    return this.effect('lease', key);
  }

  /** Any method, any body: what the fuzzer throws at an idempotent route. */
  @All('fuzz')
  @HttpCode(200)
  @Idempotent()
  fuzz(@Body() body: unknown) {
    return { received: typeof body };
  }

  @Get('starts')
  handlerStarts() {
    return starts;
  }

  /** Heap after a full collection (the suite starts this app with --expose-gc), and resident memory. */
  @Get('memory')
  memory() {
    (globalThis as { gc?: () => void }).gc?.();
    const { heapUsed, rss } = process.memoryUsage();
    return { heapUsed, rss };
  }
}

@Controller()
class TransactionStressController extends StressController {
  @Post('tx')
  @Idempotent({ transaction: true, waitTimeout })
  transaction(@Headers('idempotency-key') key: string, @IdempotentTransaction() em: EntityManager) {
    return this.effect('tx', key, em);
  }
}

const redisStore = process.env.STORE === 'redis';

/** The Redis store's connection: a URL, or a Cluster client as an app would make one. */
function redisConnection(): string | Cluster {
  if (!process.env.REDIS_CLUSTER) return process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const { nodes, natMap, options } = JSON.parse(process.env.REDIS_CLUSTER) as {
    nodes: Array<{ host: string; port: number }>;
    natMap?: ClusterOptions['natMap'];
    options?: ClusterOptions;
  };
  // As the module does for a connection of its own: a command fails fast while its node is away (503), and
  // a failover is waited out no longer than a few redirections; `options` may say otherwise.
  const cluster = new Cluster(nodes, { natMap, redisOptions: { maxRetriesPerRequest: 1, commandTimeout: 2_000 }, ...options });
  // A node killed by the failover tests refuses connections until it is back; each request meets that as a 503.
  cluster.on('error', (error: Error) => process.env.QUIET === '1' || console.error(`Redis Cluster: ${error.message}`));
  return cluster;
}

@Module({
  imports: [
    TypeOrmModule.forRoot({
      type: 'postgres',
      url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      schema,
      migrations: [...idempotencyMigrations],
      migrationsRun: true,
      extra: { max: Number(process.env.POOL ?? 10) },
      // Keep retrying at start-up only briefly: the suites start apps against a database that is up.
      retryAttempts: 1,
    }),
    IdempotencyModule.forRoot({
      purgeInterval: 0,
      store: redisStore
        ? {
            type: 'redis',
            connection: redisConnection(),
            prefix: process.env.KEY_PREFIX,
            waitForReplicas: process.env.WAIT_REPLICAS ? (JSON.parse(process.env.WAIT_REPLICAS) as { count: number; timeout: string }) : undefined,
          }
        : 'postgres',
    }),
  ],
  controllers: [redisStore ? StressController : TransactionStressController],
})
class StressAppModule {}

async function main(): Promise<void> {
  // QUIET=1 for the suites that take the database away on purpose: every refused request would log.
  const app = await NestFactory.create(StressAppModule, { logger: process.env.QUIET === '1' ? false : ['error'] });
  await app.listen(0, '127.0.0.1');
  process.stdout.write(`listening ${new URL(await app.getUrl()).port}\n`);
}

void main();
