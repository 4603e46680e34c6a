/**
 * The other build of an A/B run (`BENCH_AB=<git ref or dist folder>`): this bench's app, compiled from this
 * checkout, started on the library built from the other source, so that the two processes differ in the library
 * alone and are driven in the same rounds.
 */
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Prepares the other build and returns the entry of its copy of the bench app. */
export function otherBuild(source: string, root: string): string {
  const dist = existsSync(join(source, 'libs/idempotency/index.js')) ? source : buildRef(source, root);
  const folder = join(dist, 'ab-bench');
  mkdirSync(folder, { recursive: true });
  for (const file of readdirSync(join(root, 'dist/bench'))) if (file.endsWith('.js')) copyFileSync(join(root, 'dist/bench', file), join(folder, file));
  // The app imports the library by its package name, as users do: here, the other build's.
  const link = join(dist, 'node_modules/nestjs-idempotency');
  if (!existsSync(link)) {
    mkdirSync(join(dist, 'node_modules'), { recursive: true });
    symlinkSync('../libs/idempotency', link, 'dir');
  }
  return join(folder, 'app.js');
}

/** The library of a git ref, built once into a folder of the temp dir that shares this checkout's node_modules. */
function buildRef(ref: string, root: string): string {
  const sha = execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: root, encoding: 'utf8' }).trim();
  const checkout = join(tmpdir(), `nestjs-idempotency-ab-${sha.slice(0, 12)}`);
  const dist = join(checkout, 'dist');
  if (existsSync(join(dist, 'libs/idempotency/index.js'))) return dist;
  console.error(`Building the library of ${ref} (${sha.slice(0, 12)}) in ${checkout} ...`);
  mkdirSync(checkout, { recursive: true });
  execFileSync('sh', ['-c', `git archive ${sha} | tar -x -C "${checkout}"`], { cwd: root, stdio: 'inherit' });
  if (!existsSync(join(checkout, 'node_modules'))) symlinkSync(join(root, 'node_modules'), join(checkout, 'node_modules'), 'dir');
  execFileSync(process.execPath, ['scripts/build-lib.js'], { cwd: checkout, stdio: 'inherit' });
  return dist;
}
