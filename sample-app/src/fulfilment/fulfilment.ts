/** The queue the Stripe webhook hands checkouts to, and what a job carries. */
export const FULFILMENT_QUEUE = 'fulfilment';

export interface FulfilOrder {
  sessionId: string;
  sku: string;
  quantity: number;
}

export const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

/** BullMQ's key prefix (default `bull`): apps sharing one Redis keep their queues apart with it. */
export const QUEUE_PREFIX = process.env.QUEUE_PREFIX || undefined;
