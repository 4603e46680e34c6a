import type { Duration } from '../duration';
import { headerValue, type IdempotencyRequest } from '../idempotency-request';

/** Where a webhook provider puts the id of the event, and how long it keeps retrying it. */
export interface ProviderPreset {
  /** The event id (not a per-delivery id), or `undefined` when the request has none. */
  key(request: IdempotencyRequest): unknown;
  /** Default TTL: covers the provider's retry window, so no retry outlives its record. */
  ttl: Duration;
}

function field(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const name of path) {
    if (typeof current !== 'object' || current === null || Buffer.isBuffer(current)) return undefined;
    current = (current as Record<string, unknown>)[name];
  }
  return current;
}

const body =
  (...path: string[]) =>
  (request: IdempotencyRequest) =>
    field(request.body, ...path);
/** The first of the headers present and not empty; a later one is not read (nor refused) once one is found. */
const header =
  (...names: string[]) =>
  (request: IdempotencyRequest) => {
    for (const name of names) {
      const value = headerValue(request, name);
      if (value !== undefined && value !== '') return value;
    }
    return undefined;
  };

/**
 * Provider presets usable as `@Idempotent({ key: 'stripe' })`. Each reads the id of the *event*, which
 * stays the same across the provider's retries, never an id of one delivery attempt. Its TTL covers the
 * provider's retry window (the module's `ttl` wins when it is longer; a route's own `ttl` always wins).
 * Keys are scoped by provider, and a preset route defaults to `fingerprint: false` (a redelivery may
 * differ in its attempt counters) and stores only 2xx answers (any other answer asks for the retry).
 *
 * @example
 * \@Post('webhooks/stripe') \@VerifyWebhook('stripe') \@Idempotent({ key: 'stripe' })
 * handle(@Body() event: Stripe.Event) { ... }
 */
export const PROVIDER_PRESETS = {
  /** Body `id` (`evt_...`). Live mode retries for up to 3 days. */
  stripe: { key: body('id'), ttl: '3d' },
  /** `X-GitHub-Delivery`: one GUID per event, kept by redeliveries (manual, up to 3 days back). */
  github: { key: header('x-github-delivery'), ttl: '3d' },
  /** `X-Shopify-Event-Id` (one per event), else `X-Shopify-Webhook-Id`. Retries for up to 48 hours. */
  shopify: { key: header('x-shopify-event-id', 'x-shopify-webhook-id'), ttl: '48h' },
  /** `webhook-id`, the message id kept across retries; the schedule ends about 28 hours after the first. */
  'standard-webhooks': { key: header('webhook-id'), ttl: '28h' },
  /** `svix-id` (Svix is Standard Webhooks under its own header names), about 28 hours of retries. */
  svix: { key: header('svix-id', 'webhook-id'), ttl: '28h' },
  /** Body `event_id` (`evt_...`). Live mode retries 60 times over 3 days. */
  paddle: { key: body('event_id'), ttl: '3d' },
  /** Body `event_id` of the Events API (`Ev...`). Three retries within minutes. */
  slack: { key: body('event_id'), ttl: '24h' },
  /** Body `event_id`. Retries for up to 3 days. */
  square: { key: body('event_id'), ttl: '3d' },
  /** `Idempotency-Key` (kept across GitLab's retries), else `X-Gitlab-Event-UUID`. */
  gitlab: { key: header('idempotency-key', 'x-gitlab-event-uuid'), ttl: '24h' },
  /** `I-Twilio-Idempotency-Token`, kept when Twilio retries a callback. */
  twilio: { key: header('i-twilio-idempotency-token'), ttl: '24h' },
  /** Body `id` (`WH-...`), the event; never `PAYPAL-TRANSMISSION-ID`, which changes per attempt. 25 retries over 3 days. */
  paypal: { key: body('id'), ttl: '3d' },
  /**
   * Linear has no event id: the webhook, the action, the entity and its `updatedAt` name one change.
   * Retries come 1 minute, 1 hour and 6 hours after the first attempt.
   */
  linear: {
    key: (request: IdempotencyRequest) => {
      const parts = [field(request.body, 'webhookId'), field(request.body, 'action'), field(request.body, 'data', 'id')];
      const version = field(request.body, 'data', 'updatedAt') ?? field(request.body, 'createdAt');
      return [...parts, version].every((part) => typeof part === 'string' && part !== '') ? [...parts, version].join(':') : undefined;
    },
    ttl: '24h',
  },
} satisfies Record<string, ProviderPreset>;

export type ProviderPresetName = keyof typeof PROVIDER_PRESETS;

export function isProviderPresetName(name: string): name is ProviderPresetName {
  return Object.hasOwn(PROVIDER_PRESETS, name);
}

/** The answers a provider preset stores by default: 2xx. Anything else tells the provider to retry. */
export const storeSuccessOnly = (status: number): boolean => status >= 200 && status < 300;
