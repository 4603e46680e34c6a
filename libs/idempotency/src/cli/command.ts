import type { RecordSource } from './record-source';

/** Where the tool writes, and what it reads of its environment: the process's, or a test's. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  /** Whether stderr is a terminal, where a long purge shows its progress. */
  interactive?: boolean;
}

/** The options every command takes: where the records are, and the output format. */
export const COMMON_OPTIONS = {
  url: { type: 'string' },
  schema: { type: 'string' },
  partitioned: { type: 'boolean' },
  redis: { type: 'string' },
  prefix: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Every option of every command, for `parseArgs`; each command then refuses the ones that are not its own. */
export const ALL_OPTIONS = {
  ...COMMON_OPTIONS,
  scope: { type: 'string' },
  body: { type: 'boolean' },
  limit: { type: 'string' },
  'batch-size': { type: 'string' },
} as const;

export type OptionName = keyof typeof ALL_OPTIONS;

export interface ParsedOptions {
  url?: string;
  schema?: string;
  partitioned?: boolean;
  redis?: string;
  prefix?: string;
  json?: boolean;
  help?: boolean;
  scope?: string;
  body?: boolean;
  limit?: string;
  'batch-size'?: string;
}

export interface CommandContext {
  options: ParsedOptions;
  /** The positionals after the command's name. */
  args: string[];
  source: RecordSource;
  io: CliIo;
}

/** One command of the tool. */
export interface Command {
  name: string;
  /** One line, for the list of commands. */
  summary: string;
  /** Its own options besides the common ones. */
  options: OptionName[];
  /** The full text of `<command> --help`. */
  help: string;
  /** Checks the positionals and options before anything connects; throws a `UsageError`. */
  validate(options: ParsedOptions, args: string[]): void;
  /** Runs and returns the exit code. */
  run(context: CommandContext): Promise<number>;
}

/** Prints a value as JSON: Dates as ISO strings, Buffers never (commands turn them into text first). */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout(`${JSON.stringify(value, null, 2)}\n`);
}
