import type { Duration } from '../duration';
import type { IdempotencyRequest } from '../idempotency-request';
import type { WebhookProvider } from './webhook-verifiers';

/** A signing secret, several (any verifies: for rotation), or a function read at each request. */
export type WebhookSecret = string | readonly string[] | (() => string | readonly string[] | undefined);

/**
 * How one provider's deliveries are verified. Given to `@VerifyWebhook()`, or per provider as
 * `webhooks` in `IdempotencyModule.forRoot()` (the decorator's options win).
 */
export interface VerifyWebhookOptions<TRequest = IdempotencyRequest> {
  /** The signing secret(s). GitLab: the secret token; Twilio: the auth token; Standard Webhooks and Svix: `whsec_...`; PayPal: the webhook id. */
  secret?: WebhookSecret;
  /** The largest accepted age of a signed timestamp (Stripe, Standard Webhooks, Svix, Paddle, Slack, Linear). Default `'5m'`. */
  tolerance?: Duration;
  /** Square and Twilio: the public URL the provider calls, which they sign. */
  url?: string | ((request: TRequest) => string);
  /** PayPal: how its certificate is fetched (default `fetch`, once per URL). The secret is the webhook id. */
  certificate?: (url: string) => Promise<string>;
}

export interface VerifyWebhookMetadata {
  provider: WebhookProvider;
  options: VerifyWebhookOptions;
}
