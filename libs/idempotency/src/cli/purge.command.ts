import { IDEMPOTENCY_DEFAULTS } from '../idempotency.options';
import { UsageError } from './cli-errors';
import { type Command, type CommandContext, printJson } from './command';
import { CONNECTION_HELP, EXIT_CODES_HELP, OUTPUT_HELP } from './connection-help';
import { formatCount } from './format';
import { positiveInteger } from './numbers';

export const purgeCommand: Command = {
  name: 'purge',
  summary: 'delete expired records, in batches (PostgreSQL; Redis expires them itself)',
  options: ['batch-size'],
  help: `Usage: nestjs-idempotency purge [--batch-size <n>] [--json]

Deletes the expired records (and expired event versions) in batches, as the app's own purge does
(IdempotencyService.purgeExpired()), until none is left, then says how many and how fast. Each batch
is one statement that skips rows a claim holds (FOR UPDATE SKIP LOCKED): it runs alongside the app.
With --partitioned it drops the partitions whose range is over and whose records have all expired, as
the app's purge does; it makes no new partitions (the app makes them, at its own interval).
Redis deletes each record itself when it expires: there, nothing is to be done.

Options:
  --batch-size <n>   rows per statement (default ${IDEMPOTENCY_DEFAULTS.purgeBatchSize})

${CONNECTION_HELP}

${OUTPUT_HELP}

${EXIT_CODES_HELP}`,

  validate(options, args) {
    if (args.length > 0) throw new UsageError(`purge takes no arguments (got ${JSON.stringify(args.join(' '))}).`);
    if (options['batch-size'] !== undefined) positiveInteger(options['batch-size'], '--batch-size');
  },

  async run({ options, source, io }: CommandContext): Promise<number> {
    const batchSize = options['batch-size'] === undefined ? IDEMPOTENCY_DEFAULTS.purgeBatchSize : positiveInteger(options['batch-size'], '--batch-size');
    const started = performance.now();
    const showProgress = io.interactive && !options.json;
    const outcome = await source.purge(batchSize, (progress) => {
      if (showProgress && progress.batches % 10 === 0) io.stderr(`\rdeleted ${formatCount(progress.deleted)}...`);
    });
    const seconds = (performance.now() - started) / 1000;
    if (showProgress && outcome && outcome.batches >= 10) io.stderr('\n');
    if (!outcome) {
      if (options.json) printJson(io, { source: source.description, deleted: 0, selfExpiring: true });
      else io.stdout(`Nothing to purge: ${source.description} deletes each record itself when it expires (its key's TTL).\n`);
      return 0;
    }
    const perSecond = seconds > 0 ? Math.round(outcome.deleted / seconds) : outcome.deleted;
    if (options.json) {
      printJson(io, { source: source.description, deleted: outcome.deleted, batches: outcome.batches, batchSize, seconds: round(seconds), perSecond });
    } else {
      io.stdout(
        `Deleted ${formatCount(outcome.deleted)} expired record${outcome.deleted === 1 ? '' : 's'} from ${source.description} ` +
          `in ${formatCount(outcome.batches)} batch${outcome.batches === 1 ? '' : 'es'} of up to ${formatCount(batchSize)}, ` +
          `in ${round(seconds)} s (${formatCount(perSecond)} records/s).\n`,
      );
    }
    return 0;
  },
};

function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
