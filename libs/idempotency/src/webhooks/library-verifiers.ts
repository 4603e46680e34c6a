import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { loadOptionalPeer } from '../optional-peer';
import { assertFresh, header, refuse, type WebhookVerifier } from './signed-delivery';

// The providers checked by their own library, an optional peer loaded at the first delivery.

interface StripeWebhooks {
  signature: { verifyHeader(payload: Buffer, header: string, secret: string, tolerance: number): boolean } | null;
}

/** Stripe's own check, by the `stripe` package: `Stripe-Signature` with `t=` and one or more `v1=`. */
export const stripe: WebhookVerifier = async (delivery) => {
  const signature = header(delivery, 'stripe-signature');
  // The library accepts timestamps from the future; the tolerance here bounds both sides.
  const timestamp = /(?:^|,)\s*t=(\d+)/.exec(signature)?.[1];
  if (timestamp !== undefined) assertFresh(delivery, Number(timestamp));
  const module = await loadOptionalPeer<{ default: { webhooks: StripeWebhooks } }>('stripe', "@VerifyWebhook('stripe')");
  const verifier = module.default.webhooks.signature;
  if (!verifier) throw new IdempotencyConfigurationError('The installed stripe package has no webhook signature verifier.');
  const failures: string[] = [];
  for (const secret of delivery.secrets) {
    try {
      verifier.verifyHeader(delivery.rawBody, signature, secret, delivery.toleranceSeconds);
      return;
    } catch (error) {
      failures.push((error as Error).message);
    }
  }
  refuse(`Stripe signature check failed: ${failures[0]}`);
};

interface OctokitWebhooksMethods {
  verifyWithFallback: (secret: string, payload: string, signature: string, additional: string[] | undefined) => Promise<boolean>;
}

/** GitHub's check, by `@octokit/webhooks-methods`: `X-Hub-Signature-256` over the UTF-8 payload. */
export const github: WebhookVerifier = async (delivery) => {
  const signature = header(delivery, 'x-hub-signature-256');
  const { verifyWithFallback } = await loadOptionalPeer<OctokitWebhooksMethods>('@octokit/webhooks-methods', "@VerifyWebhook('github')");
  // The library throws on an empty payload rather than answering false.
  if (delivery.rawBody.length === 0) refuse('The delivery has no body to verify.');
  const [first, ...others] = delivery.secrets;
  const verified = await verifyWithFallback(first, delivery.rawBody.toString('utf8'), signature, others).catch((error: Error) =>
    refuse(`The X-Hub-Signature-256 check failed: ${error.message}`),
  );
  if (!verified) refuse('The X-Hub-Signature-256 signature does not match.');
};

interface StandardWebhooksModule {
  Webhook: new (secret: string) => { verify(payload: Buffer, headers: Record<string, string>): unknown };
}

/**
 * Standard Webhooks, by the `standardwebhooks` package (which Svix's own library uses): `webhook-id`,
 * `webhook-timestamp` and `webhook-signature` (several `v1,` signatures while a secret rotates). Svix
 * sends the same under `svix-` names. The package also refuses timestamps over 5 minutes away.
 */
export function standardWebhooks(prefix: 'webhook' | 'svix'): WebhookVerifier {
  return async (delivery) => {
    const names = ['id', 'timestamp', 'signature'].map((part) => `${prefix}-${part}`);
    const [id, timestamp, signature] = names.map((name) => header(delivery, name));
    assertFresh(delivery, Number(timestamp));
    const { Webhook } = await loadOptionalPeer<StandardWebhooksModule>(
      'standardwebhooks',
      `@VerifyWebhook('${prefix === 'svix' ? 'svix' : 'standard-webhooks'}')`,
    );
    const failures: string[] = [];
    for (const secret of delivery.secrets) {
      let webhook;
      try {
        webhook = new Webhook(secret);
      } catch (error) {
        throw new IdempotencyConfigurationError(`A ${prefix} signing secret is not valid (whsec_ and base64): ${(error as Error).message}`);
      }
      try {
        webhook.verify(delivery.rawBody, { 'webhook-id': id, 'webhook-timestamp': timestamp, 'webhook-signature': signature });
        return;
      } catch (error) {
        failures.push((error as Error).message);
      }
    }
    refuse(`The ${prefix}-signature check failed: ${failures[0]}`);
  };
}
