import { gitlab, linear, paddle, shopify, slack, square, twilio } from './hmac-verifiers';
import { github, standardWebhooks, stripe } from './library-verifiers';
import { paypal } from './paypal-verifier';
import type { WebhookVerifier } from './signed-delivery';

export type { SignedDelivery, WebhookVerifier } from './signed-delivery';

/** The providers `@VerifyWebhook()` checks. */
export const WEBHOOK_VERIFIERS = {
  stripe,
  github,
  'standard-webhooks': standardWebhooks('webhook'),
  svix: standardWebhooks('svix'),
  shopify,
  paddle,
  slack,
  square,
  gitlab,
  twilio,
  linear,
  paypal,
} satisfies Record<string, WebhookVerifier>;

export type WebhookProvider = keyof typeof WEBHOOK_VERIFIERS;
