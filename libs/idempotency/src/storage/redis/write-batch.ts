/** What the batch needs of ioredis' `Redis`: its connection, and whether it is ready. A `Cluster` has neither. */
interface Connected {
  status?: unknown;
  stream?: { cork?: () => void; uncork?: () => void };
}

/**
 * Holds the client's socket writes until the end of this turn of the event loop, so that the commands of every
 * request that came in the same turn leave in one write (as node-redis does), rather than a write, a system
 * call, per command. The commands keep their order; a turn of the event loop is all they wait.
 */
export class WriteBatch {
  private holding = false;

  constructor(private readonly client: object) {}

  /** Called before each command: the first of a turn corks the socket, and the end of the turn uncorks it. */
  hold(): void {
    if (this.holding) return;
    const { status, stream } = this.client as Connected;
    // Before the connection is ready ioredis queues commands itself, and a Cluster has no single socket.
    if (status !== 'ready' || typeof stream?.cork !== 'function' || typeof stream.uncork !== 'function') return;
    stream.cork();
    this.holding = true;
    setImmediate(() => {
      this.holding = false;
      stream.uncork?.();
    });
  }
}
