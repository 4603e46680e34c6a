import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * The quick start as the README shows it: the files of examples/quick-start, the requests with the answers they
 * print (curls.sh), and the migration command. The README embeds each file after a `<!-- file: path -->` line.
 */

export const root = join(__dirname, '../..');
export const exampleDir = join(root, 'examples/quick-start');

/** The deploy step the README shows, run as typed in the app's folder. */
export const MIGRATION_COMMAND = 'npx typeorm migration:run -d dist/data-source.js';

/** Where the requests in curls.sh are sent; the test sends them to the port its app listens on instead. */
export const EXAMPLE_ORIGIN = 'http://localhost:3000';

/** Paths relative to the repository root of every file that the README must embed. */
export function embeddedExampleFiles(): string[] {
  const sources = readdirSync(join(exampleDir, 'src')).map((name) => `examples/quick-start/src/${name}`);
  return [...sources.sort(), 'examples/quick-start/curls.sh'];
}

export function readRepoFile(path: string): string {
  return readFileSync(join(root, path), 'utf8');
}

export interface EmbeddedBlock {
  path: string;
  /** 1-based line of the marker in the README. */
  line: number;
  /** The fenced block's content, or undefined when no fence follows the marker. */
  text: string | undefined;
}

const MARKER = /^<!-- file: (\S+) -->\s*$/;
const FENCE = /^(`{3,}|~{3,})/;

/** Every `<!-- file: path -->` marker of a Markdown text, with the fenced block that follows it (blank lines allowed between). */
export function embeddedBlocks(markdown: string): EmbeddedBlock[] {
  const lines = markdown.split('\n');
  const blocks: EmbeddedBlock[] = [];
  lines.forEach((line, index) => {
    const marker = MARKER.exec(line);
    if (!marker) return;
    let start = index + 1;
    while (start < lines.length && lines[start].trim() === '') start += 1;
    const fence = FENCE.exec(lines[start] ?? '')?.[1];
    const end = fence === undefined ? -1 : lines.findIndex((candidate, at) => at > start && candidate.trimEnd() === fence);
    const text = end === -1 ? undefined : lines.slice(start + 1, end).join('\n');
    blocks.push({ path: marker[1], line: index + 1, text });
  });
  return blocks;
}

export interface ExampleRequest {
  /** The curl command line as the README shows it. */
  command: string;
  /** The answer printed under it: the status line, the headers shown, the body. */
  statusLine: string;
  headers: Array<[name: string, value: string]>;
  body: string;
}

/** The requests of curls.sh: each `curl` command (on one line), and the `# ` lines right under it, which show what it prints. */
export function exampleRequests(script: string): ExampleRequest[] {
  const lines = script.split('\n');
  const requests: ExampleRequest[] = [];
  lines.forEach((line, index) => {
    if (!line.startsWith('curl ')) return;
    const answer: string[] = [];
    for (let at = index + 1; lines[at]?.startsWith('# '); at += 1) answer.push(lines[at].slice(2));
    if (answer.length < 2) throw new Error(`curls.sh line ${index + 1}: show the status line and the body printed, as "# " lines under the command.`);
    const headers = answer.slice(1, -1).map((header): [string, string] => {
      const colon = header.indexOf(': ');
      if (colon < 1) throw new Error(`curls.sh: "${header}" is not a header line ("Name: value").`);
      return [header.slice(0, colon), header.slice(colon + 2)];
    });
    requests.push({ command: line, statusLine: answer[0], headers, body: answer[answer.length - 1] });
  });
  return requests;
}

export interface PrintedAnswer {
  statusLine: string;
  /** By lower-case name. */
  headers: Map<string, string>;
  body: string;
}

/** What `curl -i` printed: the status line, the headers and the body, as bytes decoded in UTF-8. */
export function parseCurlOutput(output: string): PrintedAnswer {
  const split = output.indexOf('\r\n\r\n');
  if (split === -1) throw new Error(`curl printed no complete HTTP answer:\n${output}`);
  const [statusLine, ...headerLines] = output.slice(0, split).split('\r\n');
  const headers = new Map(headerLines.map((header) => [header.slice(0, header.indexOf(':')).toLowerCase(), header.slice(header.indexOf(':') + 1).trim()]));
  return { statusLine, headers, body: output.slice(split + 4) };
}
