import { parseUrl, redact } from '../connection-url';

/** The queue the Stripe webhook hands checkouts to, and what a job carries. */
export const FULFILMENT_QUEUE = 'fulfilment';

export interface FulfilOrder {
  sessionId: string;
  sku: string;
  quantity: number;
}

/** The Redis of the BullMQ queues: REDIS_URL, or the local one when it is unset or empty. */
export const REDIS_URL = process.env.REDIS_URL?.trim() || 'redis://127.0.0.1:6379';

/** REDIS_URL checked (a StartupError when it is not a redis:// URL), and as the logs show it. */
export function redisUrl(): { url: URL; shown: string } {
  const url = parseUrl('REDIS_URL', REDIS_URL, ['redis:', 'rediss:']);
  return { url, shown: `${redact(url)} (REDIS_URL)` };
}

/** BullMQ's key prefix (default `bull`): apps sharing one Redis keep their queues apart with it. */
export const QUEUE_PREFIX = process.env.QUEUE_PREFIX || undefined;
