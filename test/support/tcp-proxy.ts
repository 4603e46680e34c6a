import { createServer, type Server, type Socket, connect } from 'node:net';

/** A TCP proxy to a server (PostgreSQL, a Redis node) that a test can cut, stall, slow down and restore. */
export class TcpProxy {
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private stalled = false;
  private delayMs = 0;

  constructor(
    private readonly target: { host: string; port: number },
    readonly port: number,
  ) {}

  static async open(target: { host: string; port: number }): Promise<TcpProxy> {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as { port: number }).port;
    await new Promise((resolve) => probe.close(resolve));
    const proxy = new TcpProxy(target, port);
    await proxy.start();
    return proxy;
  }

  /** Accepts connections again (nothing to do if it does already). */
  async start(): Promise<void> {
    if (this.server?.listening) return;
    this.server = createServer((client) => {
      const upstream = connect(this.target.port, this.target.host);
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      // Not pipe(): stall() must be able to drop bytes while the connections stay open, and slow() to hold them.
      const forward = (from: Socket, to: Socket) => {
        from.on('data', (chunk: Buffer) => {
          if (this.stalled) return;
          if (this.delayMs === 0) to.write(chunk);
          // Bytes still held when either side closes are dropped (the socket is destroyed by then): a link
          // whose sender died loses what was on the wire, as a host that crashes does.
          else setTimeout(() => to.destroyed || to.write(chunk), this.delayMs);
        });
        from.on('end', () => (this.delayMs === 0 ? to.end() : to.destroy()));
        from.on('close', () => this.delayMs === 0 || to.destroy());
      };
      forward(client, upstream);
      forward(upstream, client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
  }

  /**
   * Keeps every connection open but forwards nothing, like a network that drops packets or a server that
   * stopped answering: what a client only notices by a timeout. Bytes dropped meanwhile are lost for good,
   * so recover with stop() and start().
   */
  stall(stalled = true): void {
    this.stalled = stalled;
  }

  /**
   * Holds every chunk for `ms` before forwarding it, both ways (0: forward at once): a slow link. Chunks keep
   * their order (timers of one delay fire in the order they were set).
   */
  slow(ms: number): void {
    this.delayMs = ms;
  }

  /** Refuses new connections and drops the open ones, like a database that went away. */
  async stop(): Promise<void> {
    this.stalled = false;
    for (const socket of this.sockets) socket.destroy();
    if (this.server?.listening) await new Promise((resolve) => this.server!.close(resolve));
  }
}
