import type { Duration } from '../duration';
import type { IdempotencyRequest } from '../idempotency-request';

/** Where a webhook provider puts the id of the event, and how long it keeps retrying it. */
export interface ProviderPreset {
  /** The event id (not a per-delivery id), or `undefined` when the request has none. */
  key(request: IdempotencyRequest): unknown;
  /** Default TTL: covers the provider's retry window, so no retry outlives its record. */
  ttl: Duration;
}

function bodyField(request: IdempotencyRequest, field: string): unknown {
  const body = request.body;
  return typeof body === 'object' && body !== null && !Buffer.isBuffer(body)
    ? (body as Record<string, unknown>)[field]
    : undefined;
}

/**
 * Provider presets usable as `@Idempotent({ key: 'stripe' })`.
 *
 * @example
 * \@Post('webhooks/stripe') \@Idempotent({ key: 'stripe' })
 * handle(@Body() event: Stripe.Event) { ... }
 */
export const PROVIDER_PRESETS = {
  /** Stripe retries for up to 3 days; the event id is the body's `id` (`evt_...`). */
  stripe: { key: (request) => bodyField(request, 'id'), ttl: '3d' },
} satisfies Record<string, ProviderPreset>;

export type ProviderPresetName = keyof typeof PROVIDER_PRESETS;

export function isProviderPresetName(name: string): name is ProviderPresetName {
  return Object.hasOwn(PROVIDER_PRESETS, name);
}
