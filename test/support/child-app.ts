import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { DATABASE_URL } from './database';

/** An app running in a process of its own, so that it can really crash. */
export interface ChildApp {
  url: string;
  /** What it printed so far. */
  output(): string;
  process: ChildProcess;
  kill(): Promise<void>;
}

// The repository: two folders up from the source, three from its build in dist/ (where the benchmarks run it).
const up = join(__dirname, '../..');
const root = basename(up) === 'dist' ? join(up, '..') : up;

/** Starts a compiled app from dist/test/apps (built by `npm run build`) and waits until it listens. */
export function startChildApp(name: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<ChildApp> {
  return startCompiled(`dist/test/apps/${name}.js`, { DATABASE_URL, ...env }, /listening (\d+)/, nodeArgs);
}

/**
 * Runs a compiled entry point of this repository and waits for the line that gives its port.
 * Everything it prints is kept in `output`.
 */
export async function startCompiled(path: string, env: Record<string, string>, portLine: RegExp, nodeArgs: string[] = []): Promise<ChildApp> {
  const entry = join(root, path);
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run "npm run build" first (npm test does).`);
  const child = spawn(process.execPath, [...nodeArgs, entry], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  const port = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = portLine.exec(output);
      if (match) resolve(match[1]);
    });
    child.once('exit', (code) => reject(new Error(`${path} exited with ${code} before listening: ${output}`)));
  });
  return {
    url: `http://127.0.0.1:${port}`,
    output: () => output,
    process: child,
    kill: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}
