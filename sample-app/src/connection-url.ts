import { StartupError } from './startup-error';

/**
 * The URL in environment variable `variable`, checked: a `protocols` URL. A bad one is refused without being
 * echoed, since it may hold a password.
 */
export function parseUrl(variable: string, value: string, protocols: string[]): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new StartupError(`${variable} is not a URL; it should look like ${protocols[0]}//user:password@host:port/...`);
  }
  if (!protocols.includes(url.protocol)) throw new StartupError(`${variable} must be a ${protocols.join(' or ')}// URL, not ${url.protocol}//...`);
  return url;
}

/** The URL to print: its password, if any, as `***`. */
export function redact(url: URL): string {
  const shown = new URL(url.href);
  if (shown.password) shown.password = '***';
  return shown.href;
}

/**
 * The local PostgreSQL the shop tries when DATABASE_URL is unset or empty: postgres://postgres@127.0.0.1:5432/postgres,
 * whose parts the standard variables PGHOST, PGPORT, PGUSER, PGPASSWORD and PGDATABASE change (a PGHOST starting
 * with `/` is the directory of a Unix socket).
 */
export function defaultDatabaseUrl(env: NodeJS.ProcessEnv): URL {
  const part = (name: string, fallback: string) => encodeURIComponent(env[name] || fallback);
  const host = env.PGHOST?.includes(':') && !env.PGHOST.startsWith('/') ? `[${env.PGHOST}]` : part('PGHOST', '127.0.0.1');
  const password = env.PGPASSWORD ? `:${part('PGPASSWORD', '')}` : '';
  const text = `postgres://${part('PGUSER', 'postgres')}${password}@${host}:${part('PGPORT', '5432')}/${part('PGDATABASE', 'postgres')}`;
  try {
    return new URL(text);
  } catch {
    throw new StartupError('PGHOST, PGPORT, PGUSER or PGDATABASE does not make a valid postgres:// URL; check them.');
  }
}
