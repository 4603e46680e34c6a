import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { freePort } from '../support/free-port';
import { REDIS_URL, dropPrefix } from '../support/redis';
import { type FreshApp, freshApp, run, type RunningApp, runOrThrow, startApp } from './packed-library';

const TSCONFIG = JSON.stringify({
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'ES2023',
    strict: true,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    // The types without the optional peers are checked by types-without-peers.spec.ts; this app checks the run.
    skipLibCheck: true,
    rootDir: 'src',
    outDir: 'dist',
    types: ['node'],
  },
  include: ['src'],
});

/** An app whose records are in Redis: the library's root entry, ioredis, and no TypeORM. */
const REDIS_APP = `import 'reflect-metadata';
import { Controller, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Idempotent, IdempotencyModule } from 'nestjs-idempotency';

let runs = 0;

@Controller()
class PaymentsController {
  @Post('payments')
  @Idempotent()
  pay(): { payment: number } {
    runs += 1;
    return { payment: runs };
  }
}

@Module({
  imports: [IdempotencyModule.forRoot({ ttl: '5m', store: { type: 'redis', connection: process.env.REDIS_URL ?? '', prefix: process.env.PREFIX } })],
  controllers: [PaymentsController],
})
class AppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(AppModule);
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT), '127.0.0.1');
  console.log('Listening on ' + (await app.getUrl()));
}
void main();
`;

/** The same app with the default store, PostgreSQL, which needs the TypeORM that is not installed. */
const POSTGRES_APP = `import 'reflect-metadata';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { IdempotencyModule } from 'nestjs-idempotency';

@Module({ imports: [IdempotencyModule.forRoot()] })
class AppModule {}

NestFactory.create(AppModule, { abortOnError: false, logger: false }).then(
  () => console.log('started'),
  (error: Error) => {
    console.error(error.message);
    process.exit(1);
  },
);
`;

/**
 * A Redis-only app as a user builds it from the packed library: npm installs no TypeORM, @nestjs/typeorm or pg
 * for it (they are optional peers), it starts, and a retried request is replayed from the real Redis. Once as
 * CommonJS and once as an ES module app (what `nest new` makes).
 */
describe.each(['commonjs', 'module'] as const)('a Redis-only %s app installed from the packed library', (type) => {
  const prefix = `package-redis-only-${randomBytes(4).toString('hex')}:`;
  let app: FreshApp | undefined;
  let server: RunningApp | undefined;

  beforeAll(async () => {
    app = await freshApp({
      type,
      dependencies: ['@nestjs/common', '@nestjs/core', '@nestjs/platform-express', 'reflect-metadata', 'rxjs', 'ioredis'],
      devDependencies: ['typescript', '@types/node'],
      files: { 'tsconfig.json': TSCONFIG, 'src/main.ts': REDIS_APP, 'src/postgres.ts': POSTGRES_APP },
    });
    await runOrThrow('npx', ['tsc'], app.dir);
  }, 300_000);

  afterAll(async () => {
    await server?.stop();
    await dropPrefix(prefix.slice(0, -1));
    app?.remove();
  });

  it('installs none of TypeORM, @nestjs/typeorm and pg', () => {
    const installed = ['typeorm', '@nestjs/typeorm', 'pg'].filter((name) => existsSync(join(app!.dir, 'node_modules', name)));
    expect(installed).toEqual([]);
  });

  it('starts and replays a retried request from Redis', async () => {
    const port = await freePort();
    server = await startApp(app!.dir, 'dist/main.js', { REDIS_URL, PREFIX: prefix, PORT: String(port) });
    const send = () => fetch(`http://127.0.0.1:${port}/payments`, { method: 'POST', headers: { 'Idempotency-Key': 'payment-1' } });

    const first = await send();
    const retry = await send();

    expect({ status: first.status, replayed: first.headers.get('idempotent-replayed'), body: await first.text() }).toEqual({
      status: 201,
      replayed: null,
      body: '{"payment":1}',
    });
    // The handler ran once: the retry is the stored answer, read from Redis.
    expect({ status: retry.status, replayed: retry.headers.get('idempotent-replayed'), body: await retry.text() }).toEqual({
      status: 201,
      replayed: 'true',
      body: '{"payment":1}',
    });
    expect(server.output()).not.toMatch(/\b(WARN|ERROR)\b/);
  });

  it('fails at start with the packages to install when the PostgreSQL store is chosen', async () => {
    const result = await run(process.execPath, ['dist/postgres.js'], app!.dir);
    expect({ code: result.code, stdout: result.stdout }).toEqual({ code: 1, stdout: '' });
    expect(result.stderr).toContain(
      "The PostgreSQL store (the default) works on the app's TypeORM DataSource, and the package @nestjs/typeorm is not installed",
    );
    expect(result.stderr).toContain('npm install typeorm @nestjs/typeorm pg');
  });
});
