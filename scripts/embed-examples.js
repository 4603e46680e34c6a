// Copies each file named by a `<!-- file: path -->` line of README.md into the fenced block under it,
// so that the README shows the example files exactly (test/package/quick-start-drift.spec.ts checks it).
const { readFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');

const root = join(__dirname, '..');
const readme = join(root, 'README.md');
const lines = readFileSync(readme, 'utf8').split('\n');
const out = [];
for (let at = 0; at < lines.length; at += 1) {
  out.push(lines[at]);
  const marker = /^<!-- file: (\S+) -->\s*$/.exec(lines[at]);
  if (!marker) continue;
  const fence = /^(`{3,})/.exec(lines[at + 1] ?? '');
  if (!fence) throw new Error(`README.md line ${at + 2}: a fenced block must follow ${lines[at]}`);
  const end = lines.findIndex((line, index) => index > at + 1 && line.trimEnd() === fence[1]);
  if (end === -1) throw new Error(`README.md line ${at + 2}: the fenced block is not closed`);
  out.push(lines[at + 1], ...readFileSync(join(root, marker[1]), 'utf8').replace(/\n$/, '').split('\n'), lines[end]);
  at = end;
}
writeFileSync(readme, out.join('\n'));
