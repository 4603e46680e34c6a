/**
 * Pauses between two looks at an in-flight record, and wakes them at once when a claim on the same record
 * ends in this process: duplicates that reach the instance of the first request get its answer without
 * waiting out a poll interval. Polling rather than LISTEN/NOTIFY: it needs no connection outside the app's
 * pool and works through PgBouncer's transaction pooling.
 */
export class ClaimWaiter {
  private readonly wakers = new Map<string, Set<() => void>>();

  /** Sleeps up to `ms`, or less if `wake(id)` is called meanwhile. */
  async pause(id: string, ms: number): Promise<void> {
    // A plain timer and resolver: waking an aborted timers/promises sleep built an AbortError (with its stack)
    // for each of the duplicates a burst on one key wakes at once.
    let wake!: () => void;
    let timer: NodeJS.Timeout | undefined;
    const woken = new Promise<void>((resolve) => {
      wake = resolve;
      timer = setTimeout(resolve, ms);
    });
    const wakers = this.wakers.get(id) ?? new Set();
    wakers.add(wake);
    this.wakers.set(id, wakers);
    try {
      await woken;
    } finally {
      clearTimeout(timer);
      wakers.delete(wake);
      if (wakers.size === 0 && this.wakers.get(id) === wakers) this.wakers.delete(id);
    }
  }

  wake(id: string): void {
    for (const wake of this.wakers.get(id) ?? []) wake();
  }
}
