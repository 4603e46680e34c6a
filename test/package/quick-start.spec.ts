import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { DATABASE_URL, sql } from '../support/database';
import { freePort } from '../support/free-port';
import { type FreshApp, freshApp, type RunningApp, runOrThrow, startApp } from './packed-library';
import { EXAMPLE_ORIGIN, MIGRATION_COMMAND, type PrintedAnswer, exampleDir, exampleRequests, parseCurlOutput, readRepoFile } from './quick-start-example';

interface Manifest {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}

/** The example's tsconfig.json and sources, by path in the app. */
function exampleFiles(): Record<string, string> {
  const files: Record<string, string> = { 'tsconfig.json': readRepoFile('examples/quick-start/tsconfig.json') };
  for (const name of readdirSync(`${exampleDir}/src`)) files[`src/${name}`] = readRepoFile(`examples/quick-start/src/${name}`);
  return files;
}

async function countOrders(url: string): Promise<number> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ count: number }>('SELECT count(*)::int AS count FROM orders');
    return rows[0].count;
  } finally {
    await client.end();
  }
}

/**
 * A stranger's path, in a fresh folder outside this repository: the packed library and the README's files,
 * `tsc`, the migration command on a new database, `node dist/main.js`, and the README's curls, whose answers
 * must be those the README prints. Once as a CommonJS app and once as an ES module app (what `nest new` makes).
 */
describe.each(['commonjs', 'module'] as const)('the README quick start as a %s app', (type) => {
  const manifest = JSON.parse(readRepoFile('examples/quick-start/package.json')) as Manifest;
  const requests = exampleRequests(readRepoFile('examples/quick-start/curls.sh'));
  const database = `quick_start_${type}_${randomBytes(4).toString('hex')}`;
  let app: FreshApp | undefined;
  let server: RunningApp | undefined;

  afterAll(async () => {
    await server?.stop();
    await sql(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    app?.remove();
  });

  it('builds, migrates, starts and answers the curls as the README shows', async () => {
    expect(requests.map((request) => request.command.split(' ')[0])).toEqual(['curl', 'curl', 'curl']);
    app = await freshApp({
      type,
      dependencies: Object.keys(manifest.dependencies).filter((name) => name !== 'nestjs-idempotency'),
      devDependencies: Object.keys(manifest.devDependencies),
      files: exampleFiles(),
    });
    await runOrThrow('npx', ['tsc'], app.dir);
    expect(readFileSync(join(app.dir, 'dist/main.js'), 'utf8')).toMatch(
      type === 'module' ? /^import .* from '@nestjs\/core';$/m : /require\("@nestjs\/core"\)/,
    );

    await sql(`CREATE DATABASE ${database}`);
    const url = new URL(DATABASE_URL);
    url.pathname = `/${database}`;
    await runOrThrow('bash', ['-c', MIGRATION_COMMAND], app.dir, { DATABASE_URL: url.toString() });

    const port = await freePort();
    server = await startApp(app.dir, 'dist/main.js', { DATABASE_URL: url.toString(), PORT: String(port) });
    const answers: PrintedAnswer[] = [];
    for (const request of requests) {
      const command = request.command.replaceAll(EXAMPLE_ORIGIN, `http://localhost:${port}`);
      answers.push(parseCurlOutput(await runOrThrow('bash', ['-c', command], app.dir)));
    }

    requests.forEach((request, index) => {
      const shown = { statusLine: request.statusLine, headers: request.headers.map(([name, value]) => [name.toLowerCase(), value]), body: request.body };
      const printed = { ...answers[index], headers: request.headers.map(([name]) => [name.toLowerCase(), answers[index].headers.get(name.toLowerCase())]) };
      expect({ request: request.command, ...printed }).toEqual({ request: request.command, ...shown });
    });
    const [created, replayed, reused] = answers;
    expect(created.statusLine).toBe('HTTP/1.1 201 Created');
    expect(created.headers.has('idempotent-replayed')).toBe(false);
    expect(replayed.statusLine).toBe('HTTP/1.1 201 Created');
    expect(replayed.headers.get('idempotent-replayed')).toBe('true');
    expect(replayed.body).toBe(created.body);
    expect(reused.statusLine).toBe('HTTP/1.1 422 Unprocessable Entity');
    expect(JSON.parse(reused.body)).toMatchObject({ status: 422, code: 'IDEMPOTENCY_KEY_REUSED' });
    // The replay did not run the handler again.
    expect(await countOrders(url.toString())).toBe(1);
    // What a newcomer sees in the app's console: no warning, no error.
    expect(server.output()).not.toMatch(/\b(WARN|ERROR)\b/);
  }, 300_000);
});
