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
} from '@nestjs/common';
import { APP_INTERCEPTOR, NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { catchError, map, type Observable, throwError, timeout, TimeoutError } from 'rxjs';
import { Idempotent, IdempotencyModule, idempotencyMigrations } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { send } from '../support/http';

/** Wraps every answer, as response-envelope interceptors do. */
@Injectable()
class EnvelopeInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(map((data: unknown) => ({ data })));
  }
}

/** The timeout interceptor of Nest's documentation, applied to the whole app. */
@Injectable()
class TimeoutInterceptor implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(
      timeout(300),
      catchError((error: unknown) => throwError(() => (error instanceof TimeoutError ? new RequestTimeoutException() : error))),
    );
  }
}

const runs = new Map<string, number>();

@Controller()
class WorkController {
  @Post('work')
  @Idempotent()
  async work(@Body() body: { label: string; ms?: number }) {
    await sleep(body.ms ?? 0);
    runs.set(body.label, (runs.get(body.label) ?? 0) + 1);
    return { label: body.label, run: runs.get(body.label) };
  }
}

/** App-wide interceptors registered before IdempotencyModule run outside (around) its interceptor. */
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
      controllers: [WorkController],
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

  it('does not free the key while a handler that an outer timeout answered for is still running', async () => {
    const key = randomUUID();
    const timedOut = await send(url, '/work', { key, body: { label: key, ms: 800 } });
    expect(timedOut.status).toBe(408);
    expect((await send(url, '/work', { key, body: { label: key, ms: 800 } })).status).toBe(409);
    await sleep(700);
    expect(runs.get(key)).toBe(1);
  });
});
