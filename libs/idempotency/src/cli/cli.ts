import { parseArgs } from 'node:util';
import { DEFAULT_REDIS_PREFIX } from '../storage/redis/redis-record-key';
import { CliFailure, UsageError } from './cli-errors';
import { ALL_OPTIONS, type CliIo, type Command, COMMON_OPTIONS, type ParsedOptions } from './command';
import { CONNECTION_HELP, EXIT_CODES_HELP, OUTPUT_HELP } from './connection-help';
import { describeError, redactUrl } from './format';
import { inspectCommand } from './inspect.command';
import { PostgresRecords } from './postgres-records';
import { purgeCommand } from './purge.command';
import type { RecordSource } from './record-source';
import { RedisRecords } from './redis-records';
import { statsCommand } from './stats.command';

const PROGRAM = 'nestjs-idempotency';
const COMMANDS: Command[] = [inspectCommand, statsCommand, purgeCommand];

export const MAIN_HELP = `Usage: ${PROGRAM} <command> [options]

Inspects and maintains the records of nestjs-idempotency where the app keeps them.

Commands:
${COMMANDS.map((command) => `  ${command.name.padEnd(9)}${command.summary}`).join('\n')}

${CONNECTION_HELP}

${OUTPUT_HELP}; ${PROGRAM} <command> --help for a command's own

Examples:
  ${PROGRAM} inspect order-1 --scope 'POST /orders' --url postgres://app@db:5432/shop
  DATABASE_URL=postgres://app@db:5432/shop ${PROGRAM} stats --json
  ${PROGRAM} purge --batch-size 5000 --schema billing

${EXIT_CODES_HELP}`;

/** Where the records are, as the command line says. */
export type Connection = { kind: 'postgres'; url: string; schema?: string; partitioned?: boolean } | { kind: 'redis'; url: string; prefix: string };

/** Opens the store the connection names; tests may give their own. */
export type OpenSource = (connection: Connection) => Promise<RecordSource>;

const openSource: OpenSource = (connection) =>
  connection.kind === 'postgres'
    ? PostgresRecords.open(connection.url, connection.schema, connection.partitioned)
    : RedisRecords.open(connection.url, connection.prefix);

/**
 * Runs the command line `argv` (without `node` and the script) and returns the exit code: 0 done,
 * 1 nothing found or an expected failure (its message says what to do), 2 bad usage.
 *
 * @example
 * process.exitCode = await runCli(process.argv.slice(2), { stdout: (text) => process.stdout.write(text), stderr: ..., env: process.env });
 */
export async function runCli(argv: string[], io: CliIo, open: OpenSource = openSource): Promise<number> {
  try {
    const parsed = parse(argv);
    const command = parsed.command;
    if (parsed.help) {
      io.stdout(`${command?.help ?? MAIN_HELP}\n`);
      return 0;
    }
    if (!command) throw new UsageError(`Say which command to run: ${COMMANDS.map(({ name }) => name).join(', ')}.`);
    command.validate(parsed.options, parsed.args);
    const source = await open(connectionOf(parsed.options, io.env));
    try {
      return await command.run({ options: parsed.options, args: parsed.args, source, io });
    } finally {
      await source.close();
    }
  } catch (error) {
    if (error instanceof UsageError) {
      // The help to point at: the command's, when the line names one.
      const named = COMMANDS.find(({ name }) => name === argv.find((arg) => !arg.startsWith('-')));
      io.stderr(`${PROGRAM}: ${error.message}\nRun "${PROGRAM} ${named ? `${named.name} ` : ''}--help" for usage.\n`);
      return 2;
    }
    if (error instanceof CliFailure) {
      io.stderr(`${PROGRAM}: ${error.message}\n`);
      return 1;
    }
    // Not a failure the tool knows: the stack is what a bug report needs.
    io.stderr(`${PROGRAM}: unexpected error: ${error instanceof Error ? (error.stack ?? error.message) : describeError(error)}\n`);
    return 1;
  }
}

interface Parsed {
  command?: Command;
  args: string[];
  options: ParsedOptions;
  help: boolean;
}

function parse(argv: string[]): Parsed {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: ALL_OPTIONS, allowPositionals: true, strict: true, tokens: true });
  } catch (error) {
    // parseArgs says what was wrong (an unknown option, a missing value) in its message.
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')) throw new UsageError((error as Error).message);
    throw error;
  }
  const [name, ...rest] = parsed.positionals;
  const options = parsed.values;
  if (name === undefined) return { args: [], options, help: options.help ?? false };
  // `help <command>` as well as `<command> --help`.
  if (name === 'help') return { command: rest[0] === undefined ? undefined : find(rest[0]), args: [], options, help: true };
  const command = find(name);
  const allowed = new Set<string>([...Object.keys(COMMON_OPTIONS), ...command.options]);
  for (const token of parsed.tokens) {
    if (token.kind === 'option' && !allowed.has(token.name) && !options.help) {
      throw new UsageError(`${token.rawName} is not an option of ${command.name}.`);
    }
  }
  return { command, args: rest, options, help: options.help ?? false };
}

function find(name: string): Command {
  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (!command) throw new UsageError(`Unknown command ${JSON.stringify(name)}. Commands: ${COMMANDS.map((known) => known.name).join(', ')}.`);
  return command;
}

/** Where the records are: `--redis`, else `--url`, else DATABASE_URL. */
export function connectionOf(options: ParsedOptions, env: Record<string, string | undefined>): Connection {
  if (options.redis !== undefined) {
    if (options.url !== undefined) throw new UsageError('Give either --url (PostgreSQL) or --redis, not both.');
    if (options.schema !== undefined) throw new UsageError('--schema is for PostgreSQL; the Redis store has --prefix.');
    if (options.partitioned) throw new UsageError('--partitioned is for PostgreSQL; the Redis store has no tables.');
    if (!/^rediss?:\/\//.test(options.redis))
      throw new UsageError(`--redis takes a redis:// or rediss:// URL, not ${JSON.stringify(redactUrl(options.redis))}.`);
    return { kind: 'redis', url: options.redis, prefix: options.prefix ?? DEFAULT_REDIS_PREFIX };
  }
  if (options.prefix !== undefined) throw new UsageError('--prefix is for the Redis store: give --redis <url> with it.');
  const url = options.url ?? env.DATABASE_URL;
  if (!url) {
    throw new UsageError('Say where the records are: --url postgres://user@host:5432/db (or set DATABASE_URL), or --redis redis://host:6379.');
  }
  if (!/^postgres(ql)?:\/\//.test(url)) {
    const from = options.url === undefined ? 'DATABASE_URL' : '--url';
    throw new UsageError(`${from} must be a postgres:// or postgresql:// URL, not ${JSON.stringify(redactUrl(url))}.`);
  }
  return { kind: 'postgres', url, schema: options.schema, partitioned: options.partitioned };
}
