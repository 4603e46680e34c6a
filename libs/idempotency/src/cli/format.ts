/** A URL as it may be printed: without its password. Anything that is not a URL is returned as is. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    // Not a URL (a description already): nothing in it to hide.
    return url;
  }
}

/** An error's message; Node's connection errors to a host with several addresses carry theirs inside. */
export function describeError(error: unknown): string {
  if (error instanceof AggregateError && !error.message) return error.errors.map(describeError).join('; ');
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}

/** `1h 5m`, `3m 12s`, `850ms`: the largest unit of a duration and the next one down. */
export function formatDuration(ms: number): string {
  const abs = Math.abs(ms);
  if (abs < 1000) return `${Math.round(abs)}ms`;
  const units: Array<[string, number]> = [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ];
  const first = units.findIndex(([, size]) => abs >= size);
  const [unit, size] = units[first];
  const whole = `${Math.floor(abs / size)}${unit}`;
  const next = units[first + 1];
  const rest = next ? Math.floor((abs % size) / next[1]) : 0;
  return rest > 0 ? `${whole} ${rest}${next[0]}` : whole;
}

/** A time and how far it is from `now` (the store's clock): `2026-11-30T02:50:01.123Z (3m 12s ago)`. */
export function formatTime(time: Date, now: Date): string {
  const delta = time.getTime() - now.getTime();
  return `${time.toISOString()} (${delta >= 0 ? `in ${formatDuration(delta)}` : `${formatDuration(delta)} ago`})`;
}

/** A value from the store as it can be printed on a terminal: control characters escaped. */
export function printable(value: string): string {
  // eslint-disable-next-line no-control-regex
  return value.replace(/[\u0000-\u001f\u007f-\u009f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A key cut to `max` characters, keeping both ends (keys often differ at either). */
export function shortenKey(key: string, max = 24): string {
  const clean = printable(key);
  if (clean.length <= max) return clean;
  const half = Math.floor((max - 1) / 2);
  return `${clean.slice(0, half)}…${clean.slice(clean.length - (max - 1 - half))}`;
}

/** `1,234` */
export function formatCount(value: number): string {
  return value.toLocaleString('en-US');
}

/** Rows of cells aligned in columns, two spaces apart, numbers to the right. */
export function table(header: string[], rows: Array<Array<string | number>>): string[] {
  const cells = [header, ...rows.map((row) => row.map((cell) => (typeof cell === 'number' ? formatCount(cell) : cell)))];
  const numeric = header.map((_, column) => rows.length > 0 && rows.every((row) => typeof row[column] === 'number'));
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column].length)));
  return cells.map((row) =>
    row
      .map((cell, column) => (numeric[column] ? cell.padStart(widths[column]) : cell.padEnd(widths[column])))
      .join('  ')
      .trimEnd(),
  );
}
