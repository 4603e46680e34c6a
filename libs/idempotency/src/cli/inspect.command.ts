import { isUtf8 } from 'node:buffer';
import { idempotencyKeyHash } from '../observability/idempotency-events';
import { envelopeKeyId } from '../storage/encryption/response-encryption';
import type { IdempotencyRecordView } from '../storage/idempotency-store';
import { CliFailure, UsageError } from './cli-errors';
import { type Command, type CommandContext, printJson } from './command';
import { CONNECTION_HELP, EXIT_CODES_HELP, OUTPUT_HELP } from './connection-help';
import { formatCount, formatDuration, formatTime, printable } from './format';
import { positiveInteger } from './numbers';

const DEFAULT_LIMIT = 50;

/** A record as `inspect --json` prints it. */
export interface InspectedRecord {
  scope: string;
  key: string;
  state: IdempotencyRecordView['state'];
  /** In flight with its lease run out: the process that claimed it died or stalled. */
  stuck: boolean;
  attempts: number;
  createdAt: Date;
  completedAt: Date | null;
  leaseExpiresAt: Date | null;
  /** Whether the lease has run out, on the store's clock; `null` without a lease. */
  leaseExpired: boolean | null;
  expiresAt: Date;
  response: {
    status: number;
    headers: Array<[string, string]>;
    bodyBytes: number;
    /** Only with `--body`: the body as UTF-8 text where it is, else as base64. */
    body?: string;
    bodyEncoding?: 'utf8' | 'base64';
  } | null;
  fingerprint: string | null;
  owner: string | null;
  /** The key's hash as the logs and the diagnostics channel name it. */
  keyHash: string;
  /** The id of the key that encrypted the stored answer (`encryption`), if it is encrypted. */
  encryptedWith?: string;
}

export const inspectCommand: Command = {
  name: 'inspect',
  summary: 'show the live records of a key (in every scope, or in --scope)',
  options: ['scope', 'body', 'limit'],
  help: `Usage: nestjs-idempotency inspect <key> [--scope <scope>] [--body] [--json]

Shows each live record with this key: scope, state, attempts, when it was created and completed,
its lease (and whether it ran out: a stuck claim), when it expires, the stored status, headers and
body size, the fingerprint, the owner token, and the key's hash as the logs and the diagnostics
channel name it. Expired records count as absent and are not shown.

Options:
  --scope <scope>    only this scope: the route's "METHOD /path" (plus "#" and your scope function's
                     value), "run" or your scope for IdempotencyService.run(), "job:<queue>" for runJob().
                     Without it every scope is searched: on PostgreSQL that reads the whole table (the
                     primary key starts with the scope); on Redis it scans every key of the prefix.
  --body             print the stored body too (UTF-8 text, or base64)
  --limit <n>        show at most n records (default ${DEFAULT_LIMIT})

${CONNECTION_HELP}

${OUTPUT_HELP}

Exit code 1 when no live record has the key (with --json, after printing an empty list).
${EXIT_CODES_HELP}`,

  validate(options, args) {
    if (args.length === 0 || args[0] === '') throw new UsageError('inspect needs a key: nestjs-idempotency inspect <key>');
    if (args.length > 1) throw new UsageError(`inspect takes one key, not ${args.length} (quote a key with spaces).`);
    if (options.limit !== undefined) positiveInteger(options.limit, '--limit');
  },

  async run({ options, args: [key], source, io }: CommandContext): Promise<number> {
    const limit = options.limit === undefined ? DEFAULT_LIMIT : positiveInteger(options.limit, '--limit');
    const found = await source.find(key, { scope: options.scope, limit });
    const records = found.records.map((record) => inspected(record, found.now, options.body ?? false));
    if (options.json) printJson(io, { source: source.description, now: found.now, records, truncated: found.truncated });
    if (records.length === 0) {
      const where = options.scope === undefined ? 'in any scope' : `in scope ${JSON.stringify(options.scope)}`;
      throw new CliFailure(
        `No live record with key ${JSON.stringify(key)} ${where} (${source.description}). An expired record counts as absent.` +
          (options.scope === undefined ? '' : ' Without --scope, every scope is searched.'),
      );
    }
    if (!options.json) io.stdout(`${formatInspection(records, found.now, { truncated: found.truncated, limit })}\n`);
    return 0;
  },
};

/** A record with what a reader needs judged on the store's clock: whether its lease ran out. */
export function inspected(record: IdempotencyRecordView, now: Date, withBody: boolean): InspectedRecord {
  const leaseExpired = record.leaseExpiresAt ? record.leaseExpiresAt.getTime() <= now.getTime() : null;
  const response = record.response;
  return {
    scope: record.scope,
    key: record.key,
    state: record.state,
    stuck: record.state === 'in_flight' && leaseExpired !== false,
    attempts: record.attempts,
    createdAt: record.createdAt,
    completedAt: record.completedAt,
    leaseExpiresAt: record.leaseExpiresAt,
    leaseExpired,
    expiresAt: record.expiresAt,
    response: response && {
      status: response.status,
      headers: response.headers,
      bodyBytes: response.body.length,
      ...(withBody && bodyText(response.body)),
    },
    fingerprint: record.fingerprint,
    owner: record.owner,
    keyHash: idempotencyKeyHash(record.scope, record.key),
    ...(response && envelopeKeyId(response.body) !== undefined && { encryptedWith: envelopeKeyId(response.body) }),
  };
}

/** The text of `inspect`: one block per record, labels aligned. */
export function formatInspection(records: InspectedRecord[], now: Date, more: { truncated: boolean; limit: number }): string {
  const blocks = records.map((record) => formatRecord(record, now));
  const lines: string[] = [];
  if (records.length > 1) lines.push(`${records.length} live records with key ${JSON.stringify(records[0].key)}:`, '');
  lines.push(blocks.join('\n\n'));
  if (more.truncated) lines.push('', `Only the first ${formatCount(more.limit)} are shown: raise --limit, or give --scope.`);
  return lines.join('\n');
}

function formatRecord(record: InspectedRecord, now: Date): string {
  const rows: Array<[string, string]> = [
    ['scope', printable(record.scope)],
    ['key', printable(record.key)],
    ['state', describeState(record, now)],
    ['attempts', String(record.attempts)],
    ['created', formatTime(record.createdAt, now)],
    ['completed', record.completedAt ? formatTime(record.completedAt, now) : '-'],
    ['lease', describeLease(record, now)],
    ['expires', formatTime(record.expiresAt, now)],
  ];
  const response = record.response;
  if (response) {
    rows.push(['status', String(response.status)]);
    const headers = response.headers.map(([name, value]) => `${printable(name)}: ${printable(value)}`);
    rows.push(['headers', headers.length > 0 ? headers.join('\n') : '-']);
    rows.push(['body', response.body === undefined ? `${formatCount(response.bodyBytes)} bytes (--body shows it)` : describeBody(response)]);
    if (record.encryptedWith !== undefined) rows.push(['encrypted', `with key ${JSON.stringify(record.encryptedWith)} (headers and body)`]);
  } else {
    rows.push(['response', 'none yet']);
  }
  rows.push(['fingerprint', record.fingerprint ?? '- (not checked)'], ['owner', record.owner ?? '-'], ['log hash', record.keyHash]);
  const width = Math.max(...rows.map(([label]) => label.length)) + 2;
  return rows
    .map(([label, value]) =>
      value
        .split('\n')
        .map((line, index) => `${(index === 0 ? label : '').padEnd(width)}${line}`)
        .join('\n'),
    )
    .join('\n');
}

function describeState(record: InspectedRecord, now: Date): string {
  if (record.state === 'completed') return 'completed (repeats get the stored answer)';
  if (!record.stuck) return 'in flight (its lease is running: a request is being handled)';
  const since = record.leaseExpiresAt ? ` ${formatDuration(now.getTime() - record.leaseExpiresAt.getTime())} ago` : '';
  return `in flight, STUCK: lease ran out${since} (its process died or stalled); the next request with the key takes it over`;
}

function describeLease(record: InspectedRecord, now: Date): string {
  if (!record.leaseExpiresAt) return '-';
  return `${formatTime(record.leaseExpiresAt, now)}${record.leaseExpired ? ', run out' : ''}`;
}

function describeBody(response: NonNullable<InspectedRecord['response']>): string {
  const size = `${formatCount(response.bodyBytes)} bytes`;
  if (response.bodyBytes === 0) return `${size} (empty)`;
  if (response.bodyEncoding === 'base64') return `${size}, base64:\n${response.body}`;
  return `${size}:\n${response.body}`;
}

/** The body as text when it is UTF-8 without control characters (bar tabs and line breaks), else base64. */
export function bodyText(body: Buffer): { body: string; bodyEncoding: 'utf8' | 'base64' } {
  const text = isUtf8(body) ? body.toString('utf8') : undefined;
  // eslint-disable-next-line no-control-regex
  if (text !== undefined && !/[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/.test(text)) return { body: text, bodyEncoding: 'utf8' };
  return { body: body.toString('base64'), bodyEncoding: 'base64' };
}
