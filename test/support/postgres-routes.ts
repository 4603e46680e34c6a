import { existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { DATABASE_URL } from './database';
import { MAX_PREPARED_STATEMENTS, OwnPgBouncer, pgbouncerVersion } from './pgbouncer';

/**
 * The ways from an app to PostgreSQL that the store, concurrency and transaction-mode suites run on: straight
 * to the server, and through a PgBouncer in transaction pooling, with and without prepared statements.
 */
export type PostgresRouteName = 'direct' | 'pgbouncer-no-prepared' | 'pgbouncer-prepared';

/** A route opened for a describe block: valid from its first beforeAll on. */
export interface OpenRoute {
  readonly name: PostgresRouteName;
  /** The URL the app's DataSource connects to. */
  readonly url: string;
  /** The library's `preparedStatements` option for this route; the default (on) where absent. */
  readonly preparedStatements?: false;
}

interface RouteDefinition {
  name: PostgresRouteName;
  preparedStatements?: false;
  /** The PgBouncer program and its settings, or why the route cannot run here; none for `direct`. */
  pgbouncer?: () => { binary: string; maxPreparedStatements?: number } | { missing: string };
}

/** PgBouncer 1.21 is the first that keeps prepared statements in transaction pooling (max_prepared_statements). */
const keepsPrepared = (version: number[] | undefined) => version !== undefined && (version[0] > 1 || (version[0] === 1 && version[1] >= 21));

/** pgbouncer on the PATH, Debian's (1.18 on Debian 12), and the ones .ci/run builds into /opt/pgbouncer-<version>. */
function pgbouncerPrograms(): string[] {
  const onPath = (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'pgbouncer'));
  const built = existsSync('/opt')
    ? readdirSync('/opt')
        .filter((name) => name.startsWith('pgbouncer-'))
        .sort((a, b) => b.localeCompare(a, undefined, { numeric: true }))
        .map((name) => `/opt/${name}/bin/pgbouncer`)
    : [];
  return [...new Set([...onPath, '/usr/sbin/pgbouncer', ...built])].filter((path) => existsSync(path));
}

const ROUTES: RouteDefinition[] = [
  { name: 'direct' },
  {
    name: 'pgbouncer-no-prepared',
    preparedStatements: false,
    pgbouncer: () => {
      const programs = pgbouncerPrograms();
      // Preferably one without prepared statement support; a newer one is set to keep none.
      const binary = programs.find((path) => !keepsPrepared(pgbouncerVersion(path))) ?? programs[0];
      if (!binary) return { missing: 'no pgbouncer found (apt-get install pgbouncer, or bash .ci/run)' };
      return keepsPrepared(pgbouncerVersion(binary)) ? { binary, maxPreparedStatements: 0 } : { binary };
    },
  },
  {
    name: 'pgbouncer-prepared',
    pgbouncer: () => {
      const binary = pgbouncerPrograms().find((path) => keepsPrepared(pgbouncerVersion(path)));
      if (!binary) return { missing: 'no pgbouncer 1.21 or newer found (bash .ci/run builds one into /opt/pgbouncer-<version>)' };
      return { binary, maxPreparedStatements: MAX_PREPARED_STATEMENTS };
    },
  },
];

/**
 * `describe(title [route])` once per route, with the route's PgBouncer started before the body's hooks and
 * stopped after them. Where a route's PgBouncer is missing, its block is skipped with the reason in its title;
 * under CI=true it fails instead, so that CI cannot pass without running it.
 */
export function describeEachRoute(title: string, body: (route: OpenRoute) => void): void {
  for (const definition of ROUTES) {
    const program = definition.pgbouncer?.();
    const missing = program && 'missing' in program ? program.missing : undefined;
    if (missing && process.env.CI !== 'true') {
      describe.skip(`${title} [${definition.name}] (skipped: ${missing})`, () => body(closedRoute(definition)));
      continue;
    }
    describe(`${title} [${definition.name}]`, () => {
      let bouncer: OwnPgBouncer | undefined;
      const route: OpenRoute = {
        name: definition.name,
        preparedStatements: definition.preparedStatements,
        get url() {
          if (definition.pgbouncer && !bouncer) throw new Error(`The ${definition.name} route is used before its PgBouncer started`);
          return bouncer?.url ?? DATABASE_URL;
        },
      };
      beforeAll(async () => {
        if (missing) throw new Error(`CI=true, and the ${definition.name} route cannot run: ${missing}`);
        if (program && !('missing' in program)) bouncer = await OwnPgBouncer.start(program);
      });
      body(route);
      // Registered after the body's own afterAll hooks, so that their apps close before PgBouncer stops.
      afterAll(async () => {
        await bouncer?.stop();
      });
    });
  }
}

/** The route of a skipped block, whose tests never run. */
function closedRoute(definition: RouteDefinition): OpenRoute {
  return {
    name: definition.name,
    preparedStatements: definition.preparedStatements,
    get url(): string {
      throw new Error(`The ${definition.name} route is skipped`);
    },
  };
}
