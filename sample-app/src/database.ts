import { Client } from 'pg';
import { PGliteDriver } from 'typeorm-pglite';

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** Where the shop keeps its data, and a line saying so. */
export interface Database {
  /** Connection options for TypeORM's postgres type: a URL, or PGlite's driver. */
  options: { url: string } | { driver: unknown };
  description: string;
}

/**
 * PostgreSQL at DATABASE_URL when a server answers there; otherwise an embedded PGlite, so that the
 * sample runs on a machine without PostgreSQL.
 */
export async function chooseDatabase(url = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL): Promise<Database> {
  const probe = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await probe.connect();
    await probe.end();
    return { options: { url }, description: `PostgreSQL at ${redact(url)}` };
  } catch (error) {
    await probe.end().catch(() => undefined);
    return {
      options: { driver: serializedPGlite() },
      description: `embedded PGlite in memory (no PostgreSQL answered at ${redact(url)}: ${(error as Error).message})`,
    };
  }
}

/**
 * PGlite is a single session: every TypeORM "connection" shares it, so two open transactions would
 * silently merge and `FOR UPDATE` would never block. Handing out the session to one query runner at a
 * time serializes transactions, which keeps idempotency correct (if not concurrent) on it.
 */
function serializedPGlite(): unknown {
  type Connect = (error: unknown, client: unknown, done: () => void) => void;
  const Pool = new PGliteDriver().driver.Pool as unknown as new () => { connect(callback: Connect): Promise<void> };

  class SerializedPool extends Pool {
    private turn: Promise<void> = Promise.resolve();

    override connect(callback: Connect): Promise<void> {
      let release!: () => void;
      const mine = new Promise<void>((resolve) => (release = resolve));
      const previous = this.turn;
      this.turn = previous.then(() => mine);
      return previous.then(() =>
        super.connect((error, client) => {
          let released = false;
          const done = () => {
            if (released) return;
            released = true;
            release();
          };
          if (error) done();
          callback(error, client, done);
        }),
      );
    }
  }
  return { Pool: SerializedPool };
}

function redact(url: string): string {
  const parsed = new URL(url);
  if (parsed.password) parsed.password = '***';
  return parsed.toString();
}
