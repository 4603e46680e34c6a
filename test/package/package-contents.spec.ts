import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runOrThrow } from './packed-library';
import { readRepoFile } from './quick-start-example';

const packageDir = join(__dirname, '../../dist/libs/idempotency');

interface Manifest {
  version: string;
  files: string[];
  repository: { url: string };
  homepage: string;
  bugs: { url: string };
  keywords: string[];
  license: string;
  sideEffects: boolean;
  peerDependencies: Record<string, string>;
  peerDependenciesMeta: Record<string, { optional: boolean }>;
}

interface SourceMap {
  sources: string[];
  sourcesContent?: Array<string | null>;
}

/** A peer as the README's Install table shows it. */
interface PeerRow {
  name: string;
  range: string;
  optional: boolean;
}

/** The rows of the table under "## Install": each package of the first cell, its range, required or optional. */
function readmePeers(readme: string): PeerRow[] {
  const install = readme.slice(readme.indexOf('## Install'), readme.indexOf('\n## ', readme.indexOf('## Install') + 1));
  const rows = install.split('\n').filter((line) => line.startsWith('| `'));
  return rows.flatMap((row) => {
    const [packages, range, neededFor] = row.split(' | ').map((cell) => cell.replace(/^\| /, '').trim());
    return [...packages.matchAll(/`([^`]+)`/g)].map(([, name]) => ({ name, range: range.replaceAll('`', ''), optional: neededFor.startsWith('optional') }));
  });
}

/** What `npm publish` would ship from dist/libs/idempotency (built by `npm run build`). */
describe('the published package', () => {
  let files: string[] = [];
  const manifest = () => JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as Manifest;

  beforeAll(async () => {
    if (!existsSync(join(packageDir, 'package.json'))) throw new Error(`${packageDir} is missing: run "npm run build" first (npm test does).`);
    const [packed] = JSON.parse(await runOrThrow('npm', ['pack', '--dry-run', '--json', '--silent'], packageDir)) as Array<{ files: Array<{ path: string }> }>;
    files = packed.files.map((file) => file.path);
  });

  it('ships the README, the changelog and the licence, and no tests', () => {
    expect(['README.md', 'CHANGELOG.md', 'LICENSE', 'package.json', 'index.js', 'index.d.ts'].filter((file) => !files.includes(file))).toEqual([]);
    expect(files.filter((file) => /\.spec\.|(^|\/)(test|__tests__)\//.test(file) || file.endsWith('.ts.map'))).toEqual([]);
  });

  it('ships source maps only with their sources in them', () => {
    const maps = files.filter((file) => file.endsWith('.map'));
    expect(maps.length).toBeGreaterThan(0);
    const withoutSources = maps.filter((file) => {
      const map = JSON.parse(readFileSync(join(packageDir, file), 'utf8')) as SourceMap;
      return map.sourcesContent?.length !== map.sources.length || map.sourcesContent.some((content) => typeof content !== 'string');
    });
    expect(withoutSources).toEqual([]);
  });

  it('describes itself on the registry, and its version has an entry in the changelog', () => {
    const { version, files: included, repository, homepage, bugs, keywords, license, sideEffects } = manifest();
    const home = 'https://github.com/nestjs-idempotency/nestjs-idempotency';
    expect({ repository: repository.url, homepage, bugs: bugs.url, license, sideEffects }).toEqual({
      repository: 'git+https://github.com/nestjs-idempotency/nestjs-idempotency.git',
      homepage: `${home}#readme`,
      bugs: `${home}/issues`,
      license: 'MIT',
      sideEffects: false,
    });
    expect(included).toContain('CHANGELOG.md');
    expect(keywords).toEqual(expect.arrayContaining(['nestjs', 'idempotency']));
    const changelog = readFileSync(join(packageDir, 'CHANGELOG.md'), 'utf8');
    expect(/^## (\S+)$/m.exec(changelog)?.[1]).toBe(version);
  });

  it('leaves TypeORM, @nestjs/typeorm and pg optional, and declares pg', () => {
    const { peerDependencies, peerDependenciesMeta } = manifest();
    expect(['typeorm', '@nestjs/typeorm', 'pg'].map((name) => [name, peerDependencies[name], peerDependenciesMeta[name]?.optional])).toEqual([
      ['typeorm', '^1.0.0', true],
      ['@nestjs/typeorm', '^12.0.0', true],
      ['pg', '^8.0.0', true],
    ]);
  });

  it("has the README's Install table list every peer with the manifest's range, optional where the manifest says so", () => {
    const { peerDependencies, peerDependenciesMeta } = manifest();
    const fromManifest = Object.entries(peerDependencies)
      .map(([name, range]) => ({ name, range, optional: peerDependenciesMeta[name]?.optional === true }))
      .sort((a, b) => a.name.localeCompare(b.name));
    const fromReadme = readmePeers(readRepoFile('README.md')).sort((a, b) => a.name.localeCompare(b.name));
    expect(fromReadme).toEqual(fromManifest);
  });
});
