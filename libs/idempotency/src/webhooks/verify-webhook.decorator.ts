import { applyDecorators, SetMetadata, UseGuards } from '@nestjs/common';
import { toMilliseconds } from '../duration';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { VERIFY_WEBHOOK } from '../idempotency.constants';
import type { IdempotencyRequest } from '../idempotency-request';
import { WebhookSignatureGuard } from './webhook-signature.guard';
import type { VerifyWebhookMetadata, VerifyWebhookOptions } from './verify-webhook.options';
import { WEBHOOK_VERIFIERS, type WebhookProvider } from './webhook-verifiers';

export type { VerifyWebhookOptions, WebhookSecret } from './verify-webhook.options';

/**
 * Verifies a provider's signature on the raw request bytes before anything else of the route runs: a
 * forged delivery gets 400 `WEBHOOK_SIGNATURE_INVALID` and never reaches the claim, so it can neither
 * run the handler nor take a real event's id. Needs `NestFactory.create(AppModule, { rawBody: true })`.
 * Stripe, GitHub and Standard Webhooks (Svix) are checked by their own library (`stripe`,
 * `@octokit/webhooks-methods`, `standardwebhooks`: install the one you use); PayPal, Paddle, Slack, Square,
 * Twilio, Linear and Shopify by the library's own HMAC code, which follows each provider's documented scheme.
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
