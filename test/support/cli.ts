import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** What a run of the command-line tool printed, and how it exited. */
export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

const entry = join(__dirname, '../../dist/libs/idempotency/cli/main.js');

/** Runs the built `nestjs-idempotency` tool (`npm run build` makes it) as users do, in a process of its own. */
export function runBuiltCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliRun> {
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run "npm run build" first (npm test does).`);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [entry, ...args], { env: { ...process.env, ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (error as { code?: unknown }).code : 0;
      if (typeof code !== 'number') return reject(error ?? new Error('the tool did not exit'));
      resolve({ code, stdout, stderr });
    });
  });
}
