import type { LoggerService } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import diagnosticsChannel from 'node:diagnostics_channel';
import { IDEMPOTENCY_OUTCOME_CHANNEL, onIdempotencyOutcome } from 'nestjs-idempotency';
import { createSchema, dropSchema } from '../support/database';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';

/** Records error lines; every other level throws for the library's lines, as a broken logger would. */
class ThrowingLogger implements LoggerService {
  readonly errors: string[] = [];
  error = (message: unknown) => void this.errors.push(String(message));
  log = (_message: unknown, context?: unknown) => {
    if (context === 'Idempotency') throw new Error('log sink is down');
  };
  warn = this.log;
  debug = this.log;
  verbose = this.log;
}

/** An observer must never change an answer or take the app down. */
describe.each(PLATFORMS)('observers that throw, on %s', (platform) => {
  let schema: string;
  let t: TestApp;
  const logger = new ThrowingLogger();
  const uncaught: unknown[] = [];
  const onUncaught = (error: unknown) => void uncaught.push(error);

  beforeAll(async () => {
    schema = await createSchema(`observers_${platform}`);
    t = await startApp(platform, { schema, logger });
    // Jest would report an uncaught exception too; counting it here says which one it was.
    process.on('uncaughtException', onUncaught);
  });
  afterAll(async () => {
    process.off('uncaughtException', onUncaught);
    await t?.close();
    await dropSchema(schema);
  });

  it('answers as usual when a subscriber of the outcome channel throws, and logs it once', async () => {
    const subscriber = () => {
      throw new Error('metrics exporter crashed');
    };
    diagnosticsChannel.subscribe(IDEMPOTENCY_OUTCOME_CHANNEL, subscriber);
    const stop = onIdempotencyOutcome(() => {
      throw new Error('second observer crashed');
    });
    const asyncSubscriber = () => Promise.reject(new Error('async exporter rejected'));
    // eslint-disable-next-line @typescript-eslint/no-misused-promises -- an async subscriber is what this test is about
    diagnosticsChannel.subscribe(IDEMPOTENCY_OUTCOME_CHANNEL, asyncSubscriber);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      for (let i = 0; i < 3; i++) {
        const key = randomUUID();
        const first = await send(t.url, '/t/basic', { key, body: { label: key } });
        const replay = await send(t.url, '/t/basic', { key, body: { label: key } });
        expect(first.status).toBe(201);
        expect(replay.headers.get('idempotent-replayed')).toBe('true');
        expect(await t.effects(key)).toBe(1);
      }
      await new Promise((resolve) => setImmediate(resolve));
      expect(uncaught).toEqual([]);
      expect(logger.errors.filter((line) => line.includes('metrics exporter crashed'))).toHaveLength(1);
      expect(logger.errors.filter((line) => line.includes('second observer crashed'))).toHaveLength(1);
      expect(logger.errors.filter((line) => line.includes('async exporter rejected'))).toHaveLength(1);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
      diagnosticsChannel.unsubscribe(IDEMPOTENCY_OUTCOME_CHANNEL, subscriber);
      // eslint-disable-next-line @typescript-eslint/no-misused-promises -- an async subscriber is what this test is about
      diagnosticsChannel.unsubscribe(IDEMPOTENCY_OUTCOME_CHANNEL, asyncSubscriber);
      stop();
    }
    expect(diagnosticsChannel.hasSubscribers(IDEMPOTENCY_OUTCOME_CHANNEL)).toBe(false);
  });

  it('answers as usual when the logger throws on an outcome it logs', async () => {
    const key = randomUUID();
    expect((await send(t.url, '/t/basic', { key, body: { label: key } })).status).toBe(201);
    // A key reused with another body is logged at 'log' level, which this logger refuses.
    const reused = await send(t.url, '/t/basic', { key, body: { label: `${key}-other` } });
    expect(reused.status).toBe(422);
    expect(uncaught).toEqual([]);
  });
});
