import { testedVersion } from './packed-library';
import { MIGRATION_COMMAND, embeddedBlocks, embeddedExampleFiles, readRepoFile } from './quick-start-example';

interface Manifest {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}

/** The README shows examples/quick-start as it is, so that what CI builds and runs is what a reader pastes. */
describe('the README quick start', () => {
  const readme = readRepoFile('README.md');
  const blocks = embeddedBlocks(readme);

  it('embeds every file of examples/quick-start that a reader needs', () => {
    const embedded = new Set(blocks.map((block) => block.path));
    // Each is missing its "<!-- file: <path> -->" line and the fenced block with the file under it.
    expect(embeddedExampleFiles().filter((path) => !embedded.has(path))).toEqual([]);
  });

  it('shows each embedded file exactly as it is', () => {
    for (const block of blocks) {
      const shown = { marker: `README.md line ${block.line}: ${block.path}`, text: block.text ?? '(no fenced block after the marker)' };
      expect(shown).toEqual({ marker: shown.marker, text: readRepoFile(block.path).replace(/\n$/, '') });
    }
  });

  it('shows the migration command that the quick start test runs', () => {
    expect({ command: MIGRATION_COMMAND, inReadme: readme.includes(MIGRATION_COMMAND) }).toEqual({ command: MIGRATION_COMMAND, inReadme: true });
  });

  it("gives the example a package.json with this repository's tested versions and the same migration command", () => {
    const manifest = JSON.parse(readRepoFile('examples/quick-start/package.json')) as Manifest;
    const library = JSON.parse(readRepoFile('libs/idempotency/package.json')) as { version: string };
    const { 'nestjs-idempotency': version, ...dependencies } = manifest.dependencies;
    expect(version).toBe(library.version);
    for (const [name, pinned] of Object.entries({ ...dependencies, ...manifest.devDependencies }))
      expect({ name, pinned }).toEqual({ name, pinned: testedVersion(name) });
    expect(`npx ${manifest.scripts['migration:run']}`).toBe(MIGRATION_COMMAND);
  });
});
