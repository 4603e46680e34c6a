import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client } from 'pg';
import { DATABASE_URL } from './database';
import { freePort } from './free-port';

/** The settings docs/operations.md recommends for transaction pooling, which the suites run through. */
export const PGBOUNCER_SETTINGS = {
  pool_mode: 'transaction',
  // At least each test app's own pool (10), so that PgBouncer never queues what the app's pool lets through.
  default_pool_size: 20,
  max_client_conn: 500,
  query_wait_timeout: 5,
  idle_transaction_timeout: 0,
  // Not a recommendation: each transaction takes the next server connection rather than the last one used, so that
  // a setting or a statement one transaction leaves behind is found by another's, as it would be under load.
  server_round_robin: 1,
} as const;

/** How many prepared statements PgBouncer keeps per server connection, on the versions that keep any (1.21+). */
export const MAX_PREPARED_STATEMENTS = 200;

export interface PgBouncerOptions {
  /** The pgbouncer program. */
  binary: string;
  /** `max_prepared_statements`; only written where given (PgBouncer before 1.21 refuses the setting). */
  maxPreparedStatements?: number;
}

/**
 * A PgBouncer of the test's own in transaction pooling, on a free port in front of DATABASE_URL's server, with
 * its configuration and auth file in a temporary folder. Started as the postgres user when run as root, since
 * PgBouncer refuses to run as root; stopped by its PID.
 */
export class OwnPgBouncer {
  private output = '';

  private constructor(
    private readonly dir: string,
    readonly port: number,
    private readonly child: ChildProcess,
  ) {
    const keep = (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-4000));
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  /** DATABASE_URL, through this PgBouncer. */
  get url(): string {
    const url = new URL(DATABASE_URL);
    url.hostname = '127.0.0.1';
    url.port = String(this.port);
    return url.toString();
  }

  static async start(options: PgBouncerOptions): Promise<OwnPgBouncer> {
    const dir = mkdtempSync(join(tmpdir(), 'own-pgbouncer-'));
    const port = await freePort();
    const upstream = new URL(DATABASE_URL);
    const user = decodeURIComponent(upstream.username || 'postgres');
    const settings: Record<string, string | number> = {
      listen_addr: '127.0.0.1',
      listen_port: port,
      unix_socket_dir: '',
      // The local PostgreSQL trusts 127.0.0.1; PgBouncer still wants the user in its auth file.
      auth_type: 'trust',
      auth_file: join(dir, 'userlist.txt'),
      pidfile: join(dir, 'pgbouncer.pid'),
      ...PGBOUNCER_SETTINGS,
      ...(options.maxPreparedStatements === undefined ? {} : { max_prepared_statements: options.maxPreparedStatements }),
    };
    const ini = [
      '[databases]',
      // Any database name the client asks for, on the upstream server.
      `* = host=${upstream.hostname} port=${upstream.port || 5432}`,
      '[pgbouncer]',
      ...Object.entries(settings).map(([name, value]) => `${name} = ${value}`),
    ].join('\n');
    writeFileSync(join(dir, 'pgbouncer.ini'), `${ini}\n`);
    writeFileSync(join(dir, 'userlist.txt'), `"${user}" ""\n`);
    const owner = process.getuid?.() === 0 ? postgresUser() : undefined;
    if (owner) for (const path of [dir, join(dir, 'pgbouncer.ini'), join(dir, 'userlist.txt')]) chownSync(path, owner.uid, owner.gid);
    const child = spawn(options.binary, [join(dir, 'pgbouncer.ini')], { stdio: ['ignore', 'pipe', 'pipe'], ...owner });
    const bouncer = new OwnPgBouncer(dir, port, child);
    await bouncer.waitUntilServing().catch(async (error: unknown) => {
      await bouncer.stop();
      throw error;
    });
    return bouncer;
  }

  /** SIGTERM, PgBouncer's immediate shutdown; then the folder goes. */
  async stop(): Promise<void> {
    const { child } = this;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Until a statement goes through it to PostgreSQL. */
  private async waitUntilServing(): Promise<void> {
    let last: unknown;
    for (let attempt = 0; attempt < 100; attempt++) {
      if (this.child.exitCode !== null) break;
      const client = new Client({ connectionString: this.url, connectionTimeoutMillis: 2000 });
      try {
        await client.connect();
        await client.query('SELECT 1');
        return;
      } catch (error) {
        last = error;
        await sleep(100);
      } finally {
        await client.end().catch(() => undefined);
      }
    }
    throw new Error(`PgBouncer did not serve on port ${this.port} (${(last as Error | undefined)?.message ?? 'it exited'}): ${this.output}`);
  }
}

/** `pgbouncer --version`'s number, e.g. [1, 24, 1]; undefined where the program does not run. */
export function pgbouncerVersion(binary: string): number[] | undefined {
  try {
    const match = /PgBouncer (\d+)\.(\d+)(?:\.(\d+))?/.exec(execFileSync(binary, ['--version'], { stdio: 'pipe' }).toString());
    return match ? match.slice(1).map((part) => Number(part ?? 0)) : undefined;
  } catch {
    return undefined;
  }
}

function postgresUser(): { uid: number; gid: number } {
  const id = (which: '-u' | '-g') => Number(execFileSync('id', [which, 'postgres']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}
