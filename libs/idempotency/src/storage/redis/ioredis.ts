import type { Redis } from 'ioredis';
import { loadOptionalPeer } from '../../optional-peer';

/** ioredis' client class, as this library constructs it: from a URL and options, or from options. */
export interface IoRedisConstructor {
  new (url: string, options: Record<string, unknown>): Redis;
  new (options: Record<string, unknown>): Redis;
}

/**
 * ioredis' client class, loaded on first use: ioredis is an optional peer, needed only by the Redis store,
 * the outbox relay and the command line's `--redis`. Without it, fails with the install command.
 *
 * @example
 * const Redis = await loadIoRedis('The Redis store');
 * const client = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
 */
export async function loadIoRedis(usedBy: string): Promise<IoRedisConstructor> {
  const { default: Redis } = await loadOptionalPeer<{ default: IoRedisConstructor }>('ioredis', usedBy);
  return Redis;
}
