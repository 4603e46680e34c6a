import type { IdempotencyRecordView } from '../storage/idempotency-store';
import { idempotencyKeyHash } from '../observability/idempotency-events';
import { connectionOf, runCli } from './cli';
import type { CliIo } from './command';
import { formatDuration, shortenKey, table } from './format';
import { bodyText } from './inspect.command';
import type { RecordSource } from './record-source';
import { globEscape, parseRecordKey } from './redis-records';

const NOW = new Date('2026-11-30T12:00:00.000Z');

function io(env: Record<string, string> = { DATABASE_URL: 'postgres://app:secret@db:5432/shop' }) {
  const out = { stdout: '', stderr: '' };
  const streams: CliIo = { stdout: (text) => (out.stdout += text), stderr: (text) => (out.stderr += text), env };
  return { out, streams };
}

/** The source, and its `find` and `close` mocks apart to check the calls on them. */
function source(records: IdempotencyRecordView[]) {
  const find = jest.fn(() => Promise.resolve({ now: NOW, records, truncated: false }));
  const close = jest.fn(() => Promise.resolve());
  const opened: RecordSource = { description: 'PostgreSQL at test', find, stats: jest.fn(), purge: jest.fn(), close };
  return { opened, find, close };
}

const stuck: IdempotencyRecordView = {
  scope: 'job:mail',
  key: 'welcome-42',
  state: 'in_flight',
  fingerprint: null,
  attempts: 2,
  owner: '8ec1954a-8012-453f-bd54-5f46a85b436b',
  createdAt: new Date('2026-11-30T11:40:00.000Z'),
  completedAt: null,
  leaseExpiresAt: new Date('2026-11-30T11:45:30.000Z'),
  expiresAt: new Date('2026-12-01T11:40:00.000Z'),
  response: null,
};

describe('runCli', () => {
  it('inspects through the source it opens, and closes it', async () => {
    const { out, streams } = io();
    const { opened, find, close } = source([stuck]);
    const open = jest.fn(() => Promise.resolve(opened));
    expect(await runCli(['inspect', 'welcome-42', '--scope', 'job:mail'], streams, open)).toBe(0);
    expect(open).toHaveBeenCalledWith({ kind: 'postgres', url: 'postgres://app:secret@db:5432/shop', schema: undefined });
    expect(find).toHaveBeenCalledWith('welcome-42', { scope: 'job:mail', limit: 50 });
    expect(close).toHaveBeenCalled();
    expect(out.stdout).toBe(
      [
        'scope        job:mail',
        'key          welcome-42',
        'state        in flight, STUCK: lease ran out 14m 30s ago (its process died or stalled); the next request with the key takes it over',
        'attempts     2',
        'created      2026-11-30T11:40:00.000Z (20m ago)',
        'completed    -',
        'lease        2026-11-30T11:45:30.000Z (14m 30s ago), run out',
        'expires      2026-12-01T11:40:00.000Z (in 23h 40m)',
        'response     none yet',
        'fingerprint  - (not checked)',
        'owner        8ec1954a-8012-453f-bd54-5f46a85b436b',
        `log hash     ${idempotencyKeyHash('job:mail', 'welcome-42')}`,
        '',
      ].join('\n'),
    );
  });

  it('exits with 1 and a message when nothing is found, and closes the source', async () => {
    const { out, streams } = io();
    const { opened, close } = source([]);
    expect(await runCli(['inspect', 'nope'], streams, () => Promise.resolve(opened))).toBe(1);
    expect(out.stderr).toBe('nestjs-idempotency: No live record with key "nope" in any scope (PostgreSQL at test). An expired record counts as absent.\n');
    expect(close).toHaveBeenCalled();
  });

  it('exits with 2 on bad usage before connecting', async () => {
    const open = jest.fn();
    for (const argv of [['inspect'], ['stats', '--scope', 'x'], ['purge', '--batch-size', '1.5'], ['what'], ['inspect', 'k', '--limit', '-3']]) {
      const { out, streams } = io();
      expect(await runCli(argv, streams, open)).toBe(2);
      expect(out.stderr).toMatch(/^nestjs-idempotency: .+\nRun "nestjs-idempotency (\w+ )?--help" for usage\.\n$/s);
    }
    expect(open).not.toHaveBeenCalled();
  });

  it('answers help without connecting: --help, <command> --help, help <command>', async () => {
    for (const argv of [['--help'], ['-h'], ['stats', '--help'], ['help', 'purge'], ['inspect', '--body', '--help']]) {
      const { out, streams } = io({});
      expect(await runCli(argv, streams, jest.fn())).toBe(0);
      expect(out.stdout).toMatch(/^Usage: nestjs-idempotency/);
    }
  });
});

describe('connectionOf', () => {
  it('takes --url, else DATABASE_URL, or --redis with its prefix', () => {
    expect(connectionOf({ url: 'postgresql://h/db', schema: 's' }, { DATABASE_URL: 'postgres://other/db' })).toEqual({
      kind: 'postgres',
      url: 'postgresql://h/db',
      schema: 's',
    });
    expect(connectionOf({}, { DATABASE_URL: 'postgres://other/db' })).toEqual({ kind: 'postgres', url: 'postgres://other/db', schema: undefined });
    expect(connectionOf({ redis: 'rediss://r:6380' }, { DATABASE_URL: 'postgres://other/db' })).toEqual({
      kind: 'redis',
      url: 'rediss://r:6380',
      prefix: 'idempotency:',
    });
  });

  it('refuses what cannot be a connection, without printing a password', () => {
    expect(() => connectionOf({}, {})).toThrow(/--url postgres:\/\/user@host:5432\/db \(or set DATABASE_URL\)/);
    expect(() => connectionOf({}, { DATABASE_URL: 'mysql://u:pw@h/db' })).toThrow(
      'DATABASE_URL must be a postgres:// or postgresql:// URL, not "mysql://u:***@h/db".',
    );
    expect(() => connectionOf({ redis: 'localhost:6379' }, {})).toThrow(/--redis takes a redis:\/\/ or rediss:\/\/ URL/);
  });
});

describe('formatting', () => {
  it.each([
    [850, '850ms'],
    [59_999, '59s'],
    [192_000, '3m 12s'],
    [3_600_000, '1h'],
    [3_900_000, '1h 5m'],
    [86_400_000 * 3 + 3_600_000 * 2, '3d 2h'],
    [-192_000, '3m 12s'],
  ])('formatDuration(%p) is %p', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('shortens a key keeping both ends, and escapes control characters', () => {
    expect(shortenKey('short')).toBe('short');
    expect(shortenKey('outbox-3f9a2c51-8d7e-4b1a-9c60-2e5d7f8a1b34')).toBe('outbox-3f9a…2e5d7f8a1b34');
    expect(shortenKey('a\u001bb')).toBe('a\\u001bb');
  });

  it('aligns table columns, numbers to the right', () => {
    expect(
      table(
        ['scope', 'live'],
        [
          ['POST /orders', 1200],
          ['run', 3],
        ],
      ),
    ).toEqual(['scope          live', 'POST /orders  1,200', 'run               3']);
  });

  it('shows a body as text when it is UTF-8 text, else as base64', () => {
    expect(bodyText(Buffer.from('{"ok":true}\n'))).toEqual({ body: '{"ok":true}\n', bodyEncoding: 'utf8' });
    expect(bodyText(Buffer.from([0xff, 0xfe]))).toEqual({ body: '//4=', bodyEncoding: 'base64' });
    expect(bodyText(Buffer.from('a\u0000b'))).toEqual({ body: 'YQBi', bodyEncoding: 'base64' });
  });
});

describe('the Redis layout', () => {
  it('reads scope and key back from a record key, and passes over other keys', () => {
    expect(parseRecordKey('idempotency:', 'idempotency:POST%20%2Forders:order%3A1')).toEqual({ scope: 'POST /orders', key: 'order:1' });
    expect(parseRecordKey('idempotency:', 'idempotency:meta')).toBeUndefined();
    expect(parseRecordKey('idempotency:', 'idempotency:a:b:c')).toBeUndefined();
    expect(parseRecordKey('idempotency:', 'idempotency:%E0%A4%A:k')).toBeUndefined();
    expect(parseRecordKey('idempotency:', 'other:a:b')).toBeUndefined();
  });

  it('escapes SCAN patterns', () => {
    expect(globEscape('a*b?[c]\\')).toBe('a\\*b\\?\\[c\\]\\\\');
  });
});
