import {
  Body,
  type CallHandler,
  Controller,
  type ExecutionContext,
  type INestApplication,
  Injectable,
  Module,
  type NestInterceptor,
  Post,
  RequestTimeoutException,
  UseInterceptors,
} from '@nestjs/common';
import { APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { catchError, map, type Observable, throwError, timeout, TimeoutError } from 'rxjs';
import { Idempotent, IdempotencyModule, idempotencyMigrations } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { send } from '../support/http';
import { IdempotencyInterceptor } from '../../libs/idempotency/src/idempotency.interceptor';

/** Wraps every answer, as response-envelope interceptors do. */
@Injectable()
class EnvelopeInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(map((data: unknown) => ({ data })));
  }
}

/**
 * Long enough that no other request of this file meets it on a loaded machine (at 300 ms, a slow claim turned a
 * replay test's first request into a 408); the slow handler outlives it by as much again.
 */
const OUTER_TIMEOUT_MS = 1_500;
const SLOW_HANDLER_MS = 2 * OUTER_TIMEOUT_MS;

/** The timeout interceptor of Nest's documentation, applied to the whole app. */
@Injectable()
class TimeoutInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      timeout(OUTER_TIMEOUT_MS),
      catchError((error: unknown) => throwError(() => (error instanceof TimeoutError ? new RequestTimeoutException() : error))),
    );
  }
}

const runs = new Map<string, number>();
let innerCalls = 0;

/** An interceptor of the route itself: it runs inside the idempotency interceptor. */
@Injectable()
class CountingInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    innerCalls++;
    return next.handle();
  }
}

@Controller()
class WorkController {
  @Post('work')
  @Idempotent()
  @UseInterceptors(CountingInterceptor)
  async work(@Body() body: { label: string; ms?: number }) {
    await sleep(body.ms ?? 0);
    runs.set(body.label, (runs.get(body.label) ?? 0) + 1);
    return { label: body.label, run: runs.get(body.label) };
  }
}

@Controller()
class PlainController {
  @Post('plain')
  plain(@Body() body: { label: string }) {
    return { label: body.label };
  }
}

/** Marked on the class and on a handler: the interceptor is bound twice, and must claim once. */
@Controller()
@Idempotent()
class MarkedTwiceController {
  @Post('twice')
  @Idempotent()
  twice(@Body() body: { label: string }) {
    runs.set(body.label, (runs.get(body.label) ?? 0) + 1);
    return { label: body.label, run: runs.get(body.label) };
  }
}

/** App-wide interceptors run outside (around) the idempotency interceptor, and a route's own inside it. */
describe('interceptors around the idempotency interceptor', () => {
  let schema: string;
  let app: INestApplication;
  let url: string;

  beforeAll(async () => {
    schema = await createSchema('outer');
    @Module({
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: DATABASE_URL, schema, migrations: [...idempotencyMigrations], migrationsRun: true }),
        IdempotencyModule.forRoot({ purgeInterval: 0, lease: '1s' }),
      ],
      controllers: [WorkController, PlainController, MarkedTwiceController],
      providers: [
        { provide: APP_INTERCEPTOR, useClass: EnvelopeInterceptor },
        { provide: APP_INTERCEPTOR, useClass: TimeoutInterceptor },
      ],
    })
    class OuterModule {}
    app = await NestFactory.create(OuterModule, { logger: false });
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
  });
  afterAll(async () => {
    await app?.close();
    await dropSchema(schema);
  });

  it('replays exactly the bytes the first request got, after the outer interceptors', async () => {
    const key = randomUUID();
    const first = await send(url, '/work', { key, body: { label: key } });
    const replay = await send(url, '/work', { key, body: { label: key } });
    expect(first.json()).toEqual({ data: { label: key, run: 1 } });
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.text).toBe(first.text);
    expect(runs.get(key)).toBe(1);
  });

  it('claims once where it is bound on both the class and the handler', async () => {
    const key = randomUUID();
    const first = await send(url, '/twice', { key, body: { label: key } });
    const replay = await send(url, '/twice', { key, body: { label: key } });
    expect(first.status).toBe(201);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.text).toBe(first.text);
    expect(runs.get(key)).toBe(1);
  });

  it("answers a replay before the route's own interceptors run", async () => {
    const key = randomUUID();
    await send(url, '/work', { key, body: { label: key } });
    const before = innerCalls;
    expect((await send(url, '/work', { key, body: { label: key } })).headers.get('idempotent-replayed')).toBe('true');
    expect(innerCalls).toBe(before);
  });

  it('runs only on idempotent routes: the app-wide interceptors still wrap the others', async () => {
    const intercept = jest.spyOn(IdempotencyInterceptor.prototype, 'intercept');
    try {
      const plain = await send(url, '/plain', { body: { label: 'plain' } });
      expect(plain.json()).toEqual({ data: { label: 'plain' } });
      expect(intercept).not.toHaveBeenCalled();
      await send(url, '/work', { key: randomUUID(), body: { label: randomUUID() } });
      expect(intercept).toHaveBeenCalledTimes(1);
    } finally {
      intercept.mockRestore();
    }
  });

  it('does not free the key while a handler that an outer timeout answered for is still running', async () => {
    const key = randomUUID();
    const timedOut = await send(url, '/work', { key, body: { label: key, ms: SLOW_HANDLER_MS } });
    expect(timedOut.status).toBe(408);
    expect((await send(url, '/work', { key, body: { label: key, ms: SLOW_HANDLER_MS } })).status).toBe(409);
    await sleep(SLOW_HANDLER_MS);
    expect(runs.get(key)).toBe(1);
  });
});
