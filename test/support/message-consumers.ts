import { setTimeout as sleep } from 'node:timers/promises';
import { type ChildApp, startChildApp } from './child-app';
import { sql } from './database';

/**
 * Consumer processes of `test/apps/message-consumer.ts` (RabbitMQ) on one queue, or of
 * `test/apps/jetstream-consumer.ts` on one stream, and what they did in one schema.
 */
export class MessageConsumers {
  private readonly children: ChildApp[] = [];

  constructor(
    readonly schema: string,
    readonly queue: string,
    private readonly app: 'message-consumer' | 'jetstream-consumer' = 'message-consumer',
    private readonly env: Record<string, string> = {},
  ) {}

  static async tables(schema: string): Promise<void> {
    for (const table of ['effects', 'runs']) {
      await sql(`CREATE TABLE "${schema}".${table} (id serial PRIMARY KEY, label text NOT NULL, pid int NOT NULL)`);
    }
  }

  /** One more process with `consumers` competing consumers on the queue; `bypass` runs the handlers without the claim. */
  async start(options: { consumers?: number; bypass?: boolean } = {}): Promise<ChildApp> {
    const child = await startChildApp(this.app, {
      ...this.env,
      SCHEMA: this.schema,
      QUEUE: this.queue,
      CONSUMERS: String(options.consumers ?? 1),
      BYPASS: options.bypass || process.env.IDEMPOTENCY_BYPASS === '1' ? '1' : '0',
    });
    this.children.push(child);
    return child;
  }

  /** How many times the processes acked messages with this id (a crashed process counts what it printed). */
  acked(messageId: string): number {
    return this.children.reduce(
      (sum, child) =>
        sum +
        child
          .output()
          .split('\n')
          .filter((line) => line === `acked ${messageId}`).length,
      0,
    );
  }

  async count(table: 'effects' | 'runs', label: string): Promise<number> {
    const [row] = await sql<{ n: number }>(`SELECT count(*)::int AS n FROM "${this.schema}".${table} WHERE label = $1`, [label]);
    return row.n;
  }

  async killAll(): Promise<void> {
    await Promise.all(this.children.map((child) => child.kill()));
  }
}

/** Waits until the condition holds; the suite's own timeout bounds it. */
export async function until(condition: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await condition())) await sleep(50);
}

/** Resolves once the process has exited (killed by itself, say). */
export function exited(child: ChildApp): Promise<NodeJS.Signals | null> {
  if (child.process.exitCode !== null || child.process.signalCode !== null) return Promise.resolve(child.process.signalCode);
  return new Promise((resolve) => child.process.once('exit', (_code, signal) => resolve(signal)));
}
