import { ForbiddenException } from '@nestjs/common';
import { IdempotencyKeyUnavailableException } from '../errors/idempotency.errors';
import { callRequestFunction, UNBOUNDED } from './request-function';

describe('callRequestFunction', () => {
  const bound = (ms: number) => ({ route: 'POST /x', deadline: Date.now() + ms });

  it('returns a plain value as it is, not as a promise', () => {
    expect(callRequestFunction(() => 'k', {}, 'idempotency key', UNBOUNDED)).toBe('k');
  });

  it('awaits a promise', async () => {
    await expect(callRequestFunction(() => Promise.resolve('k'), {}, 'idempotency key', bound(1000))).resolves.toBe('k');
  });

  it('passes an HttpException through, thrown or rejected', async () => {
    const forbidden = new ForbiddenException();
    expect(() =>
      callRequestFunction(
        () => {
          throw forbidden;
        },
        {},
        'idempotency key',
        UNBOUNDED,
      ),
    ).toThrow(forbidden);
    await expect(callRequestFunction(() => Promise.reject(forbidden), {}, 'idempotency key', bound(1000))).rejects.toBe(forbidden);
  });

  it('turns any other failure into the retryable 503', async () => {
    expect(() =>
      callRequestFunction(
        () => {
          throw new TypeError('x is undefined');
        },
        {},
        'idempotency key',
        UNBOUNDED,
      ),
    ).toThrow(IdempotencyKeyUnavailableException);
    await expect(callRequestFunction(() => Promise.reject(new Error('down')), {}, 'idempotency key', bound(1000))).rejects.toThrow(
      IdempotencyKeyUnavailableException,
    );
  });

  it('stops waiting at the deadline with a 503', async () => {
    const pending = callRequestFunction(() => new Promise<string>(() => undefined), {}, 'idempotency key', bound(50));
    await expect(pending).rejects.toThrow(IdempotencyKeyUnavailableException);
  });
});
