import { setTimeout as sleep } from 'node:timers/promises';
import { Client, DatabaseError } from 'pg';
import { defaultDatabaseUrl, parseUrl, redact } from './connection-url';
import { serializedPGlite } from './pglite';
import { StartupError } from './startup-error';

/** How long an explicit DATABASE_URL is given to answer (a server still starting, say) before the shop gives up. */
export const DATABASE_WAIT_MS = 10_000;
/** The longest one connection attempt may take. */
const ATTEMPT_TIMEOUT_MS = 2_000;
/** The pause between two attempts. */
const RETRY_PAUSE_MS = 500;
/** SQLSTATEs of a server that answers but cannot take the connection yet: starting up, or too many connections. */
const NOT_YET = new Set(['57P03', '53300']);

/** Where the shop keeps its data, and the line the start prints about it. */
export interface Database {
  /** Connection options for TypeORM's postgres type: a URL, or PGlite's driver. */
  options: { url: string } | { driver: unknown };
  description: string;
  /** The embedded PGlite: its data is lost when the app stops, which the start warns about. */
  inMemory: boolean;
}

/** Reports attempts that failed but will be retried. */
type RetryReporter = (message: string) => void;

/**
 * DATABASE_URL set: PostgreSQL there, given up to {@link DATABASE_WAIT_MS} to answer; never a fallback, so that a
 * mistyped URL cannot quietly lose records (throws {@link StartupError}). Unset or empty (as a `.env` often leaves it):
 * the local PostgreSQL if it answers, otherwise an embedded PGlite in memory, so that the sample runs anywhere.
 */
export async function chooseDatabase(env: NodeJS.ProcessEnv, retrying: RetryReporter): Promise<Database> {
  const given = env.DATABASE_URL?.trim();
  if (given) return waitForPostgres(parseUrl('DATABASE_URL', given, ['postgres:', 'postgresql:']), retrying);

  const url = defaultDatabaseUrl(env);
  const why = env.DATABASE_URL === undefined ? 'DATABASE_URL is unset' : 'DATABASE_URL is empty';
  const failure = await connectOnce(url, ATTEMPT_TIMEOUT_MS);
  if (!failure) return { options: { url: url.href }, description: `PostgreSQL at ${redact(url)} (${why}: the local default)`, inMemory: false };
  return {
    options: { driver: serializedPGlite() },
    description:
      `embedded PGlite, IN MEMORY: everything the shop stores is lost when it stops. ${why}, and no PostgreSQL answered at ` +
      `${redact(url)} (${reason(failure)}); start one there or set DATABASE_URL to keep the data.`,
    inMemory: true,
  };
}

async function waitForPostgres(url: URL, retrying: RetryReporter): Promise<Database> {
  const where = `${redact(url)} (DATABASE_URL)`;
  const deadline = Date.now() + DATABASE_WAIT_MS;
  for (let attempt = 1; ; attempt++) {
    const failure = await connectOnce(url, Math.min(ATTEMPT_TIMEOUT_MS, Math.max(deadline - Date.now(), 100)));
    if (!failure) return { options: { url: url.href }, description: `PostgreSQL at ${where}`, inMemory: false };
    // A server that answers and refuses (a wrong password, a missing database) will refuse again: no point waiting.
    const answered = failure instanceof DatabaseError && !NOT_YET.has(failure.code ?? '');
    if (answered || Date.now() + RETRY_PAUSE_MS >= deadline) {
      throw new StartupError(
        `${answered ? 'PostgreSQL refused the connection at' : `no PostgreSQL answered within ${DATABASE_WAIT_MS / 1000} s at`} ${where}: ` +
          `${reason(failure)}. Start the server or correct DATABASE_URL; with DATABASE_URL set, the shop never falls back ` +
          'to the in-memory PGlite.',
      );
    }
    if (attempt === 1) retrying(`PostgreSQL at ${where} does not answer (${reason(failure)}); trying again for up to ${DATABASE_WAIT_MS / 1000} s.`);
    await sleep(RETRY_PAUSE_MS);
  }
}

/** Connects and disconnects: the failure, or `null` when the server took the connection. */
async function connectOnce(url: URL, timeoutMs: number): Promise<Error | null> {
  const probe = new Client({ connectionString: url.href, connectionTimeoutMillis: timeoutMs });
  try {
    await probe.connect();
    await probe.end();
    return null;
  } catch (error) {
    // The probe's own failure is the one reported; ending a client that never connected adds nothing.
    await probe.end().catch(() => undefined);
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** What went wrong, in a few words: Node reports a refused `localhost` (tried on IPv6 and IPv4) as an AggregateError without a message. */
function reason(error: Error): string {
  if (error.message) return error.message;
  const first = error instanceof AggregateError ? (error.errors[0] as unknown) : undefined;
  return first instanceof Error && first.message ? first.message : ((error as { code?: string }).code ?? error.name);
}
