import { applyDecorators, SetMetadata, UseGuards } from '@nestjs/common';
import { type Duration, toMilliseconds } from '../duration';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { VERIFY_WEBHOOK } from '../idempotency.constants';
import type { IdempotencyRequest } from '../idempotency-request';
import { WebhookSignatureGuard } from './webhook-signature.guard';
import { WEBHOOK_VERIFIERS, type WebhookProvider } from './webhook-verifiers';

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

/**
 * Verifies a provider's signature on the raw request bytes before anything else of the route runs: a
 * forged delivery gets 400 `WEBHOOK_SIGNATURE_INVALID` and never reaches the claim, so it can neither
 * run the handler nor take a real event's id. Needs `NestFactory.create(AppModule, { rawBody: true })`.
 * Uses the provider's own library where one exists (`stripe`, `@octokit/webhooks-methods`,
 * `standardwebhooks`: install the one you use).
 *
 * @example
 * \@Post('webhooks/stripe')
 * \@VerifyWebhook('stripe', { secret: () => process.env.STRIPE_WEBHOOK_SECRET })
 * \@Idempotent({ key: 'stripe' })
 * handle(@Body() event: Stripe.Event) { ... }
 */
export function VerifyWebhook<TRequest = IdempotencyRequest>(
  provider: WebhookProvider,
  options: VerifyWebhookOptions<TRequest> = {},
): ClassDecorator & MethodDecorator {
  const where = `@VerifyWebhook('${provider}')`;
  if (!Object.hasOwn(WEBHOOK_VERIFIERS, provider)) {
    throw new IdempotencyConfigurationError(
      `${String(provider)} is not a provider @VerifyWebhook() checks. Use one of: ${Object.keys(WEBHOOK_VERIFIERS).join(', ')}.`,
    );
  }
  if (options.tolerance !== undefined && toMilliseconds(options.tolerance, `${where}: tolerance`) <= 0) {
    throw new IdempotencyConfigurationError(`${where}: tolerance must be more than 0; it bounds the age of a signed timestamp.`);
  }
  const metadata: VerifyWebhookMetadata = { provider, options: options as VerifyWebhookOptions };
  return applyDecorators(SetMetadata(VERIFY_WEBHOOK, metadata), UseGuards(WebhookSignatureGuard));
}
