import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { sql } from '../support/database';
import { type Reply, send } from '../support/http';

/** `npm run test:stress` sets STRESS=full; `npm test` runs the same suites scaled down. */
export const FULL = process.env.STRESS === 'full';

export const scaled = (small: number, full: number): number => (FULL ? full : small);

/** The full run prints its figures, for the README and the notes. */
export function report(line: string): void {
  if (FULL) console.log(line);
}

/** Every answer a client got, and when. */
export interface Attempt {
  key: string;
  status: number | 'connection lost';
  retryAfter: string | null;
  /** Answered from a stored response (`Idempotent-Replayed: true`). */
  replayed: boolean;
  at: number;
  ms: number;
}

/**
 * Sends one delivery as a webhook provider would: again after a refusal (409), any 5xx or a lost
 * connection, to another instance if there are several, until it gets its answer. Any other answer
 * ends it. Every attempt is recorded.
 */
export async function deliver(urls: () => string[], path: string, key: string, attempts: Attempt[], deadline: number): Promise<Reply> {
  for (;;) {
    const live = urls();
    const url = live[Math.floor(Math.random() * live.length)];
    const at = Date.now();
    let reply: Reply | undefined;
    try {
      reply = await send(url, path, { key, body: { key } });
    } catch {
      // The instance was killed (or is restarting): the provider retries.
    }
    attempts.push({
      key,
      status: reply?.status ?? 'connection lost',
      retryAfter: reply?.headers.get('retry-after') ?? null,
      replayed: reply?.headers.get('idempotent-replayed') === 'true',
      at,
      ms: Date.now() - at,
    });
    if (reply && reply.status !== 409 && reply.status < 500) return reply;
    if (Date.now() > deadline) throw new Error(`${key} on ${path}: still no answer at the deadline; last ${reply?.status ?? 'connection lost'}`);
    await sleep(50 + Math.random() * 100);
  }
}

/** Runs `work` over the items with at most `concurrency` at a time. */
export async function inParallel<T>(items: T[], concurrency: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await work(items[next++]);
    }),
  );
}

/** `count` deliveries over `keys` fresh keys (each at least once), in random order. */
export function duplicates(keys: number, count: number): { keys: string[]; deliveries: string[] } {
  const unique = Array.from({ length: keys }, () => randomUUID());
  const deliveries = [...unique, ...Array.from({ length: count - keys }, () => unique[Math.floor(Math.random() * keys)])];
  for (let i = deliveries.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [deliveries[i], deliveries[j]] = [deliveries[j], deliveries[i]];
  }
  return { keys: unique, deliveries };
}

/** Handler runs per key of one route, from the effect rows the stress app writes. */
export async function effectsPerKey(schema: string, mode: string): Promise<Map<string, number>> {
  const rows = await sql<{ key: string; count: number }>(`SELECT key, count(*)::int AS count FROM "${schema}".effects WHERE mode = $1 GROUP BY key`, [mode]);
  return new Map(rows.map((row) => [row.key, row.count]));
}

export async function createEffectsTable(schema: string): Promise<void> {
  await sql(`CREATE TABLE "${schema}".effects (id bigserial PRIMARY KEY, mode text NOT NULL, key text NOT NULL, pid int NOT NULL)`);
}

/** Keys whose handler ran other than exactly once, for a readable failure. */
export function notOnce(keys: string[], effects: Map<string, number>): Record<string, number> {
  return Object.fromEntries(keys.filter((key) => effects.get(key) !== 1).map((key) => [key, effects.get(key) ?? 0]));
}
