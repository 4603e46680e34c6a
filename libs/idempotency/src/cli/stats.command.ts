import { UsageError } from './cli-errors';
import { type Command, type CommandContext, printJson } from './command';
import { CONNECTION_HELP, EXIT_CODES_HELP, OUTPUT_HELP } from './connection-help';
import { formatCount, formatTime, printable, shortenKey, table } from './format';
import type { RecordStats } from './record-source';

const TOP_SCOPES = 20;
const TOP_STUCK = 10;

export const statsCommand: Command = {
  name: 'stats',
  summary: 'count records by state and by scope; list the oldest stuck claims',
  options: [],
  help: `Usage: nestjs-idempotency stats [--json]

Counts the records by state: in flight with a running lease (being handled now), in flight with
its lease run out (stuck: the process that claimed it died or stalled; the next request with the
key takes it over), completed, and expired (absent for requests, deleted by the next purge).
Then the ${TOP_SCOPES} scopes with the most live records, and the ${TOP_STUCK} claims stuck longest.
It reads every record: on a large table it takes as long as a full scan.

${CONNECTION_HELP}

${OUTPUT_HELP}

${EXIT_CODES_HELP}`,

  validate(_options, args) {
    if (args.length > 0) throw new UsageError(`stats takes no arguments (got ${JSON.stringify(args.join(' '))}).`);
  },

  async run({ options, source, io }: CommandContext): Promise<number> {
    const stats = await source.stats({ topScopes: TOP_SCOPES, topStuck: TOP_STUCK });
    if (options.json) printJson(io, { source: source.description, ...stats });
    else io.stdout(`${formatStats(stats, source.description, source.description.startsWith('Redis'))}\n`);
    return 0;
  },
};

/** The text of `stats`. */
export function formatStats(stats: RecordStats, description: string, selfExpiring = false): string {
  const { states } = stats;
  const lines = [
    `Records in ${description}, at ${stats.now.toISOString()}:`,
    '',
    ...table(
      ['state', 'records'],
      [
        ['in flight (lease running)', states.inFlight],
        ['stuck (in flight, lease ran out)', states.stuck],
        ['completed', states.completed],
        [selfExpiring ? 'expired (Redis deletes them itself)' : 'expired, awaiting purge', states.expired],
      ],
    ),
    '',
  ];
  if (stats.scopes.length === 0) {
    lines.push('No live records.');
  } else {
    const shown = stats.scopeCount > stats.scopes.length ? `top ${stats.scopes.length} of ${formatCount(stats.scopeCount)}` : `${stats.scopeCount}`;
    lines.push(
      `Live records by scope (${shown}):`,
      ...table(
        ['scope', 'live', 'in flight', 'stuck', 'completed'],
        stats.scopes.map((scope) => [printable(scope.scope), scope.live, scope.inFlight, scope.stuck, scope.completed]),
      ),
    );
  }
  lines.push('');
  if (stats.oldestStuck.length === 0) {
    lines.push('No stuck claims.');
  } else {
    lines.push(
      `Oldest stuck claims (${stats.oldestStuck.length} of ${formatCount(states.stuck)}):`,
      ...table(
        ['scope', 'key', 'attempts', 'stuck since (lease ran out)'],
        stats.oldestStuck.map((claim) => [
          printable(claim.scope),
          shortenKey(claim.key),
          claim.attempts,
          claim.leaseExpiredAt ? formatTime(claim.leaseExpiredAt, stats.now) : `no lease; created ${formatTime(claim.createdAt, stats.now)}`,
        ]),
      ),
      '',
      'A stuck claim is taken over by the next request with its key; `inspect <key> --scope <scope>` shows one.',
    );
  }
  return lines.join('\n');
}
