import { execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A PostgreSQL server of the test's own, in a temporary folder, that it can stop and start without
 * disturbing the shared one. Made with the local installation's initdb and pg_ctl; as root, they run as
 * the postgres user, since PostgreSQL refuses to run as root.
 */
export class OwnPostgres {
  private constructor(
    private readonly dir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  static async create(): Promise<OwnPostgres> {
    const dir = mkdtempSync(join(tmpdir(), 'own-postgres-'));
    const server = new OwnPostgres(dir, await freePort());
    if (process.getuid?.() === 0) chownSync(dir, id('-u'), id('-g'));
    server.pg('initdb', ['-D', join(dir, 'data'), '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8']);
    server.start();
    return server;
  }

  start(): void {
    // fsync off: this server is thrown away; what is tested is the outage, not the disk.
    this.pg('pg_ctl', [
      '-D',
      join(this.dir, 'data'),
      '-l',
      join(this.dir, 'log'),
      '-w',
      '-o',
      `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off`,
      'start',
    ]);
  }

  /** `immediate` is a crash: no checkpoint, clients cut off, recovery at the next start. */
  stop(mode: 'fast' | 'immediate' = 'fast'): void {
    this.pg('pg_ctl', ['-D', join(this.dir, 'data'), '-w', '-m', mode, 'stop']);
  }

  destroy(): void {
    try {
      this.stop('immediate');
    } catch {
      // Already stopped.
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private pg(tool: string, args: string[]): void {
    const root = process.getuid?.() === 0;
    execFileSync(root ? 'runuser' : join(binDir(), tool), root ? ['-u', 'postgres', '--', join(binDir(), tool), ...args] : args, { stdio: 'pipe' });
  }
}

/** The newest local PostgreSQL's programs (Debian keeps them out of PATH). */
function binDir(): string {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) throw new Error('PostgreSQL server programs not found under /usr/lib/postgresql (Debian package postgresql).');
  const newest = readdirSync(base)
    .sort((a, b) => Number(a) - Number(b))
    .at(-1)!;
  return join(base, newest, 'bin');
}

/** The postgres user's uid or gid. */
function id(which: '-u' | '-g'): number {
  return Number(execFileSync('id', [which, 'postgres']).toString().trim());
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}
