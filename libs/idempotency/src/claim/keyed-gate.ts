/**
 * One holder per key at a time within this process, in arrival order, with a bounded wait.
 *
 * In transaction mode a claim holds a pooled connection for as long as its handler runs, and a
 * duplicate waiting on the row lock would hold one too. Queuing duplicates here first means a burst
 * on one key costs each instance one connection, not the whole pool.
 */
export class KeyedGate {
  private readonly tails = new Map<string, Promise<void>>();

  /**
   * Resolves once every earlier holder of `key` is done, with the function that lets the next one in
   * and whether there was anyone to wait for; `undefined` on timeout.
   */
  async acquire(key: string, timeoutMs: number): Promise<{ leave: () => void; waited: boolean } | undefined> {
    const previous = this.tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    // The next holder waits for the previous one and for this one, whether this one times out or not.
    const tail = previous ? previous.then(() => mine) : mine;
    this.tails.set(key, tail);
    // The key's entry goes once the whole line up to this one has left: one that gave up waiting leaves its
    // place, not the entry, while an earlier holder still holds the key.
    const done = () => {
      release();
      void tail.then(() => {
        if (this.tails.get(key) === tail) this.tails.delete(key);
      });
    };
    if (!previous) return { leave: done, waited: false };

    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => (timer = setTimeout(resolve, Math.max(0, timeoutMs), false)));
    const acquired = await Promise.race([previous.then(() => true), timedOut]);
    clearTimeout(timer);
    if (acquired) return { leave: done, waited: true };
    done();
    return undefined;
  }
}
