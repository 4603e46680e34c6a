// Builds the installable package: compiled library (source maps carry their sources) plus its own manifest,
// README, changelog and licence.
const { execFileSync } = require('node:child_process');
const { chmodSync, cpSync, rmSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const out = join(root, 'dist/libs/idempotency');
rmSync(out, { recursive: true, force: true });
execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', 'libs/idempotency/tsconfig.lib.json'], {
  cwd: root,
  stdio: 'inherit',
});
for (const file of ['libs/idempotency/package.json', 'README.md', 'CHANGELOG.md', 'LICENSE']) {
  cpSync(join(root, file), join(out, file.split('/').pop()));
}
// The package's bin: runnable as ./cli/main.js too, not only through npm's link (which sets the bit itself).
chmodSync(join(out, 'cli/main.js'), 0o755);
