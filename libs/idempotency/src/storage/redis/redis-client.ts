/**
 * An ioredis client, a single server (`Redis`) or a `Cluster`, as far as the library uses one: ioredis is an
 * optional peer, and the shipped types compile without it. ioredis' own clients fit.
 */
export interface RedisClient {
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number; readOnly?: boolean }): void;
  quit(): Promise<unknown>;
}
