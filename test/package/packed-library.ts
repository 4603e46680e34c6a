import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The library as a user gets it: `npm pack` of the built package, installed into fresh folders outside this repository. */

const root = join(__dirname, '../..');
const packageDir = join(root, 'dist/libs/idempotency');

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end and returns what it printed; never throws on a non-zero exit. */
export function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== 'number') reject(new Error(`${command} could not run: ${error.message}`, { cause: error }));
      else resolve({ code: error ? Number(error.code) : 0, stdout, stderr });
    });
  });
}

/** Like `run`, but a non-zero exit is an error that carries the output. */
export async function runOrThrow(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  const result = await run(command, args, cwd, env);
  if (result.code !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.code} in ${cwd}:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

let tarball: Promise<string> | undefined;

/** `npm pack` of dist/libs/idempotency (built by `npm run build`, which `npm test` runs), once per test file. */
export function packLibrary(): Promise<string> {
  tarball ??= (async () => {
    if (!existsSync(join(packageDir, 'package.json'))) throw new Error(`${packageDir} is missing: run "npm run build" first (npm test does).`);
    const destination = mkdtempSync(join(tmpdir(), 'nestjs-idempotency-pack-'));
    await runOrThrow('npm', ['pack', '--silent', '--pack-destination', destination], packageDir);
    const [file] = readdirSync(destination).filter((name) => name.endsWith('.tgz'));
    return join(destination, file);
  })();
  return tarball;
}

/**
 * The version of a package that this repository is tested with, so that a fresh app installs the same working set
 * (see TOOLCHAIN.md): the exact version from the root package.json.
 */
export function testedVersion(name: string): string {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
  const version = manifest.dependencies?.[name] ?? manifest.devDependencies?.[name];
  if (!version) throw new Error(`${name} is not a dependency of this repository: add it there first, so that its version is the tested one.`);
  return version;
}

export interface FreshAppOptions {
  /** 'module' for an ESM app (what `nest new` generates now), 'commonjs' otherwise. */
  type: 'module' | 'commonjs';
  /** Package names, installed at the version this repository is tested with. */
  dependencies: string[];
  devDependencies?: string[];
  /** Files to write into the app, by path relative to it. */
  files?: Record<string, string>;
}

export interface FreshApp {
  dir: string;
  remove(): void;
}

/**
 * A new folder outside this repository with its own package.json: the packed library plus the named packages,
 * installed by npm as a user's would be (from the npm cache when it has them). Nothing of this repository's
 * node_modules is visible from it.
 */
export async function freshApp(options: FreshAppOptions): Promise<FreshApp> {
  const dir = mkdtempSync(join(tmpdir(), 'nestjs-idempotency-app-'));
  const versions = (names: string[] = []) => Object.fromEntries(names.map((name) => [name, testedVersion(name)]));
  const manifest = {
    name: 'fresh-app',
    version: '1.0.0',
    private: true,
    type: options.type,
    dependencies: { 'nestjs-idempotency': `file:${await packLibrary()}`, ...versions(options.dependencies) },
    devDependencies: versions(options.devDependencies),
    // The same pins the repository needs for `npm ci` on this registry (TOOLCHAIN.md).
    overrides: { 'unrs-resolver': testedOverride('unrs-resolver'), 'msgpackr-extract': testedOverride('msgpackr-extract') },
  };
  writeFileSync(join(dir, 'package.json'), JSON.stringify(manifest, null, 2));
  for (const [path, text] of Object.entries(options.files ?? {})) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  await runOrThrow('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--loglevel=error'], dir);
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

function testedOverride(name: string): string {
  const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { overrides: Record<string, string> };
  return manifest.overrides[name];
}

export interface RunningApp {
  output(): string;
  stop(): Promise<void>;
}

/**
 * `node <script>` in the app's folder, once it logs that it listens ("Listening on http://..."); killed if it
 * does not within a minute.
 */
export async function startApp(dir: string, script: string, env: Record<string, string>): Promise<RunningApp> {
  const child = spawn(process.execPath, [script], { cwd: dir, env: { ...process.env, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (chunk: Buffer) => {
        output += chunk.toString();
        if (/Listening on http:\/\/(localhost|127\.0\.0\.1):\d+/.test(output)) resolve();
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      void exited.then(() => reject(new Error(`node ${script} exited before listening:\n${output}`)));
      timer = setTimeout(() => reject(new Error(`node ${script} did not listen within a minute:\n${output}`)), 60_000);
    });
  } catch (error) {
    await stop('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
  }
  return { output: () => output, stop: () => stop('SIGTERM') };
}
