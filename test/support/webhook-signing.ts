import { createHash, createHmac, randomUUID, sign } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { PAYPAL, PAYPAL_CERT_URL } from './paypal-certificate';
import { sign as signGithub } from '@octokit/webhooks-methods';
import { Webhook as StandardWebhook } from 'standardwebhooks';
import Stripe from 'stripe';
import { PUBLIC_URL } from './webhooks.controller';

/** A delivery as a provider sends it: the exact body bytes and the headers that sign them. */
export interface SignedRequest {
  body: string;
  headers: Record<string, string>;
}

const now = () => Math.floor(Date.now() / 1000);

/** Signed by Stripe's own test helper. */
export function stripeDelivery(event: object, secret: string, timestamp = now()): SignedRequest {
  const body = JSON.stringify(event);
  const signature = Stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp });
  return { body, headers: { 'content-type': 'application/json', 'stripe-signature': signature } };
}

/** Signed by Octokit's `sign`, as GitHub does; `delivery` is the event's GUID. */
export async function githubDelivery(payload: object, secret: string, delivery: string): Promise<SignedRequest> {
  const body = JSON.stringify(payload);
  return {
    body,
    headers: {
      'content-type': 'application/json',
      'x-github-event': 'issues',
      'x-github-delivery': delivery,
      'x-hub-signature-256': await signGithub(secret, body),
    },
  };
}

/** Signed by the `standardwebhooks` package; `prefix: 'svix'` gives Svix's header names. */
export function standardDelivery(payload: object, secret: string, id: string, timestamp = new Date(), prefix: 'webhook' | 'svix' = 'webhook'): SignedRequest {
  const body = JSON.stringify(payload);
  const signature = new StandardWebhook(secret).sign(id, timestamp, body);
  return {
    body,
    headers: {
      'content-type': 'application/json',
      [`${prefix}-id`]: id,
      [`${prefix}-timestamp`]: String(Math.floor(timestamp.getTime() / 1000)),
      [`${prefix}-signature`]: signature,
    },
  };
}

const hmac = (algorithm: string, secret: string, data: string) => createHmac(algorithm, secret).update(data);

/**
 * Providers without a signing helper of their own, signed as their documentation describes. `id` is the
 * event's id where the provider's preset reads it; `age` backdates the signed timestamp (seconds).
 */
export function handSignedDelivery(provider: string, secret: string, id: string, options: { age?: number; path?: string } = {}): SignedRequest {
  const ts = now() - (options.age ?? 0);
  const json = (payload: object) => JSON.stringify(payload);
  const url = `${PUBLIC_URL}${options.path ?? `/hooks/${provider}`}`;
  switch (provider) {
    case 'svix':
      return standardDelivery({ type: 'invoice.paid' }, secret, id, new Date(ts * 1000), 'svix');
    case 'shopify': {
      const body = json({ id: 1, note: 'order' });
      return {
        body,
        headers: { 'content-type': 'application/json', 'x-shopify-event-id': id, 'x-shopify-hmac-sha256': hmac('sha256', secret, body).digest('base64') },
      };
    }
    case 'paddle': {
      const body = json({ event_id: id, event_type: 'transaction.completed' });
      return {
        body,
        headers: { 'content-type': 'application/json', 'paddle-signature': `ts=${ts};h1=${hmac('sha256', secret, `${ts}:${body}`).digest('hex')}` },
      };
    }
    case 'slack': {
      const body = json({ type: 'event_callback', event_id: id, event: { type: 'app_mention' } });
      return {
        body,
        headers: {
          'content-type': 'application/json',
          'x-slack-request-timestamp': String(ts),
          'x-slack-signature': `v0=${hmac('sha256', secret, `v0:${ts}:${body}`).digest('hex')}`,
        },
      };
    }
    case 'square': {
      const body = json({ event_id: id, type: 'payment.updated' });
      return { body, headers: { 'content-type': 'application/json', 'x-square-hmacsha256-signature': hmac('sha256', secret, url + body).digest('base64') } };
    }
    case 'gitlab': {
      const body = json({ object_kind: 'push' });
      return { body, headers: { 'content-type': 'application/json', 'idempotency-key': id, 'x-gitlab-token': secret } };
    }
    case 'twilio': {
      const fields = { MessageSid: 'SM1', Body: 'hello', From: '+15550001' };
      const body = new URLSearchParams(fields).toString();
      const signed =
        url +
        Object.keys(fields)
          .sort()
          .map((name) => name + fields[name as keyof typeof fields])
          .join('');
      return {
        body,
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          'i-twilio-idempotency-token': id,
          'x-twilio-signature': hmac('sha1', secret, signed).digest('base64'),
        },
      };
    }
    case 'linear': {
      const body = json({
        action: 'update',
        type: 'Issue',
        webhookId: 'wh_1',
        webhookTimestamp: ts * 1000,
        createdAt: '2026-11-23T10:00:00.000Z',
        data: { id, updatedAt: '2026-11-23T10:00:00.000Z' },
      });
      return { body, headers: { 'content-type': 'application/json', 'linear-signature': hmac('sha256', secret, body).digest('hex') } };
    }
    case 'paypal': {
      // The "secret" is the webhook id; PayPal signs with its certificate's key.
      const body = json({ id, event_type: 'PAYMENT.CAPTURE.COMPLETED', resource: { id: 'CAP-1' } });
      const transmission = randomUUID();
      const time = new Date(ts * 1000).toISOString();
      const signature = sign('sha256', Buffer.from(`${transmission}|${time}|${secret}|${crc32(body)}`), PAYPAL.key).toString('base64');
      return {
        body,
        headers: {
          'content-type': 'application/json',
          'paypal-transmission-id': transmission,
          'paypal-transmission-time': time,
          'paypal-transmission-sig': signature,
          'paypal-cert-url': PAYPAL_CERT_URL,
          'paypal-auth-algo': 'SHA256withRSA',
        },
      };
    }
    default:
      throw new Error(`no signer for ${provider}`);
  }
}

/** The sha-256 of a body, hex: what Twilio puts in `bodySHA256`. */
export const sha256Hex = (body: string) => createHash('sha256').update(body).digest('hex');
