import { Controller, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { randomUUID } from 'node:crypto';
import IORedis from 'ioredis';
import { Idempotent, IdempotencyConfigurationError, IdempotencyModule, type IdempotencyModuleOptions } from 'nestjs-idempotency';
import { createSchema, dropSchema } from '../support/database';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';
import { REDIS_URL, uniquePrefix } from '../support/redis';

@Controller('plans')
class ShortLeaseController {
  @Post('short')
  @Idempotent({ lease: '500ms' })
  short() {
    return {};
  }
}

@Controller('plans')
class ZeroTtlController {
  @Post('zero')
  @Idempotent({ ttl: 0 })
  zero() {
    return {};
  }
}

@Controller('plans')
class FractionalTtlController {
  @Post('fraction')
  @Idempotent({ ttl: 1.5 })
  fraction() {
    return {};
  }
}

@Controller('plans')
class LongLeaseController {
  @Post('long')
  @Idempotent({ lease: '2m', maxLease: '1m' })
  long() {
    return {};
  }
}

/** Class-level options apply to each route; a method that is no route gets no plan. */
@Controller('plans')
@Idempotent({ waitTimeout: '0s' })
class ClassLevelWaitController {
  @Post('first')
  first() {
    return this.helper();
  }

  @Post('second')
  second() {
    return this.helper();
  }

  helper() {
    return {};
  }
}

@Controller('plans')
class GoodController {
  @Post('good')
  @Idempotent({ lease: '1s', maxLease: '1s', ttl: '1m' })
  good() {
    return { ok: true };
  }
}

/** How a start failed: the error `app.init()` (through `listen()`) rejected with. */
async function startFailure(start: () => Promise<TestApp>): Promise<Error> {
  const failure = await start().then(
    async (app) => {
      await app.close();
      return undefined;
    },
    (error: unknown) => error as Error,
  );
  if (!failure) throw new Error('The app started.');
  expect(failure).toBeInstanceOf(IdempotencyConfigurationError);
  return failure;
}

describe.each(PLATFORMS)('options are checked at start, on %s', (platform) => {
  let schema: string;
  const start = (controllers: Array<new () => unknown>, idempotency: IdempotencyModuleOptions = {}) => startApp(platform, { schema, controllers, idempotency });

  beforeAll(async () => {
    schema = await createSchema(`plans_${platform}`);
  });
  afterAll(async () => {
    await dropSchema(schema);
  });

  it("stops the start on a route's lease under 1s, naming the controller, the method and the fix", async () => {
    const failure = await startFailure(() => start([ShortLeaseController], { lease: '60s' }));
    expect(failure.message).toMatch(/@Idempotent\(\) on ShortLeaseController\.short: lease must be at least 1s.*500 ms/);
  });

  it.each([
    ['ttl: 0', ZeroTtlController, /ZeroTtlController\.zero: ttl: 0 is not a duration \(it is zero\)/],
    ['ttl: 1.5', FractionalTtlController, /FractionalTtlController\.fraction: ttl: 1\.5 is not a duration \(it is not a whole number/],
  ])('stops the start on a route with %s', async (_name, controller, message) => {
    expect((await startFailure(() => start([controller]))).message).toMatch(message);
  });

  it('stops the start on a lease longer than maxLease', async () => {
    const failure = await startFailure(() => start([LongLeaseController]));
    expect(failure.message).toMatch(/LongLeaseController\.long: lease \(120000 ms\) is longer than maxLease \(60000 ms\).*Raise maxLease/);
  });

  it.each([
    [-10, /ttl: -10 is not a duration \(it is negative\)/],
    [Number.NaN, /ttl: NaN is not a duration/],
    [Number.POSITIVE_INFINITY, /ttl: Infinity is not a duration \(it is not finite\)/],
  ])('stops the start on a module ttl of %p, though no route reads it', async (ttl, message) => {
    const failure = await startFailure(() => start([GoodController], { ttl }));
    expect(failure.message).toMatch(/^IdempotencyModule\.forRoot\(\): /);
    expect(failure.message).toMatch(message);
  });

  it('names every wrong module option in one error', async () => {
    const failure = await startFailure(() => start([GoodController], { lease: '1h', purgeBatchSize: 0, waitTimeout: '-1s' }));
    expect(failure.message).toMatch(/^3 idempotency options are wrong:/);
    expect(failure.message).toMatch(/forRoot\(\): lease \(3600000 ms\) is longer than maxLease \(600000 ms\)/);
    expect(failure.message).toMatch(/forRoot\(\): purgeBatchSize must be a positive whole number of rows, not 0/);
    expect(failure.message).toMatch(/forRoot\(\): waitTimeout: "-1s" is not a duration/);
  });

  it('names every wrong route in one error, those of a class-level @Idempotent() each, and no method that is not a route', async () => {
    const failure = await startFailure(() => start([GoodController, ShortLeaseController, ClassLevelWaitController]));
    expect(failure.message).toMatch(/^3 idempotency options are wrong:/);
    expect(failure.message).toMatch(/ShortLeaseController\.short: lease/);
    expect(failure.message).toMatch(/ClassLevelWaitController\.first: waitTimeout: "0s" is not a duration/);
    expect(failure.message).toMatch(/ClassLevelWaitController\.second: waitTimeout/);
    expect(failure.message).not.toMatch(/helper|GoodController/);
  });

  it('takes purgeInterval: 0, which turns the purge off, and serves the routes it planned', async () => {
    const t = await start([GoodController], { purgeInterval: 0, lease: '1s', maxLease: '2s' });
    try {
      const key = randomUUID();
      const first = await send(t.url, '/plans/good', { key });
      const second = await send(t.url, '/plans/good', { key });
      expect(first.status).toBe(201);
      expect(second.headers.get('idempotent-replayed')).toBe('true');
    } finally {
      await t.close();
    }
  });
});

describe('run() and runJob() options', () => {
  let schema: string;
  let t: TestApp;

  beforeAll(async () => {
    schema = await createSchema('plans_run');
    t = await startApp('express', { schema, controllers: [], idempotency: { lease: '60s' } });
  });
  afterAll(async () => {
    await t?.close();
    await dropSchema(schema);
  });

  it.each([
    [{ lease: '500ms' }, /^run\(\): lease must be at least 1s/],
    [{ lease: '20m' }, /^run\(\): lease \(1200000 ms\) is longer than maxLease \(600000 ms\)/],
    [{ ttl: 0 }, /^run\(\): ttl: 0 is not a duration/],
    [{ waitTimeout: 1.5 }, /^run\(\): waitTimeout: 1\.5 is not a duration/],
  ])('refuses %p before any claim', async (options, message) => {
    const key = randomUUID();
    const fn = jest.fn(() => 'ran');
    const run = t.service.run(key, fn, options);
    await expect(run).rejects.toBeInstanceOf(IdempotencyConfigurationError);
    await expect(run).rejects.toThrow(message);
    expect(fn).not.toHaveBeenCalled();
    expect(await t.service.find(key)).toBeUndefined();
  });

  it('refuses a bad option of runJob() before any claim', async () => {
    const id = randomUUID();
    const fn = jest.fn(() => 'ran');
    await expect(t.service.runJob({ id, queueName: 'plans' }, fn, { lease: '500ms' })).rejects.toBeInstanceOf(IdempotencyConfigurationError);
    expect(fn).not.toHaveBeenCalled();
    expect(await t.service.find(id, { scope: 'job:plans' })).toBeUndefined();
  });

  it("runs with the module's checked defaults and the call's own values", async () => {
    const key = randomUUID();
    expect(await t.service.run(key, () => 'first', { lease: '2s', maxLease: '2s', ttl: '1m' })).toBe('first');
    expect(await t.service.run(key, () => 'second')).toBe('first');
  });
});

describe('a store without transactions', () => {
  it('refuses to start an app whose routes need transaction mode, and says why', async () => {
    @Controller()
    class TransactionalController {
      @Post('tx')
      @Idempotent({ transaction: true })
      tx() {
        return {};
      }
    }
    // A client of the test's own: a start refused in a lifecycle hook leaves Nest's shutdown hooks uncalled.
    const client = new IORedis(REDIS_URL);
    @Module({
      imports: [IdempotencyModule.forRoot({ purgeInterval: 0, store: { type: 'redis', connection: client, prefix: `${uniquePrefix('plans')}:` } })],
      controllers: [TransactionalController],
    })
    class TransactionalModule {}
    const app = await NestFactory.create(TransactionalModule, { logger: false });
    const error = await app.init().then(
      () => undefined,
      (failure: unknown) => failure,
    );
    await client.quit();
    expect(error).toBeInstanceOf(IdempotencyConfigurationError);
    expect((error as Error).message).toMatch(/TransactionalController\.tx needs transaction mode.*PostgreSQL store.*\(Redis\)/s);
  });
});
