import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { assertFresh, header, refuse, type SignedDelivery, type WebhookVerifier } from './signed-delivery';

// The providers that sign with a shared secret (or send the secret itself), checked with node:crypto alone.

/** A verifier from a check that needs no I/O: what the check throws rejects the promise, as the type says. */
function synchronous(check: (delivery: SignedDelivery) => void): WebhookVerifier {
  return (delivery) => new Promise<void>((resolve) => resolve(check(delivery)));
}

/** Constant-time comparison of two encoded digests; a length mismatch is a mismatch, not an error. */
function sameDigest(expected: Buffer, received: Buffer): boolean {
  return expected.length === received.length && timingSafeEqual(expected, received);
}

function hmac(algorithm: 'sha1' | 'sha256', secret: string, ...parts: Array<string | Buffer>): Buffer {
  const mac = createHmac(algorithm, secret);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/** Whether any secret's HMAC matches any of the received signatures. */
function anyMatches(delivery: SignedDelivery, received: readonly Buffer[], digest: (secret: string) => Buffer): boolean {
  return delivery.secrets.some((secret) => {
    const expected = digest(secret);
    return received.some((signature) => sameDigest(expected, signature));
  });
}

function requireUrl(delivery: SignedDelivery, provider: string): string {
  if (delivery.url) return delivery.url;
  throw new IdempotencyConfigurationError(
    `@VerifyWebhook('${provider}') needs the url option: ${provider} signs the public URL it calls, which the app cannot ` +
      'know behind proxies. Give it as a string, or a function of the request.',
  );
}

/** Shopify: `X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the body. Shopify signs no timestamp. */
export const shopify = synchronous((delivery) => {
  const received = Buffer.from(header(delivery, 'x-shopify-hmac-sha256'), 'base64');
  if (!anyMatches(delivery, [received], (secret) => hmac('sha256', secret, delivery.rawBody))) {
    refuse('The X-Shopify-Hmac-Sha256 signature does not match.');
  }
});

/** Paddle Billing: `Paddle-Signature: ts=...;h1=...` (an `h1` per secret while one rotates), HMAC of `ts:body`. */
export const paddle = synchronous((delivery) => {
  const parts = header(delivery, 'paddle-signature')
    .split(';')
    .map((part) => part.split('=', 2) as [string, string | undefined]);
  const ts = parts.find(([name]) => name === 'ts')?.[1];
  const signatures = parts.filter(([name, value]) => name === 'h1' && value).map(([, value]) => Buffer.from(value!, 'hex'));
  if (!ts || signatures.length === 0) refuse('The Paddle-Signature header has no ts or no h1.');
  assertFresh(delivery, Number(ts));
  if (!anyMatches(delivery, signatures, (secret) => hmac('sha256', secret, `${ts}:`, delivery.rawBody))) {
    refuse('The Paddle-Signature signature does not match.');
  }
});

/** Slack: `X-Slack-Signature: v0=<hex>` over `v0:<X-Slack-Request-Timestamp>:<body>`. */
export const slack = synchronous((delivery) => {
  const timestamp = header(delivery, 'x-slack-request-timestamp');
  const [version, hex] = header(delivery, 'x-slack-signature').split('=', 2);
  if (version !== 'v0' || !hex) refuse('The X-Slack-Signature header is not a v0 signature.');
  assertFresh(delivery, Number(timestamp));
  if (!anyMatches(delivery, [Buffer.from(hex, 'hex')], (secret) => hmac('sha256', secret, `v0:${timestamp}:`, delivery.rawBody))) {
    refuse('The X-Slack-Signature signature does not match.');
  }
});

/** Square: `X-Square-HmacSha256-Signature`, base64 HMAC-SHA256 of the notification URL and the body. */
export const square = synchronous((delivery) => {
  const received = Buffer.from(header(delivery, 'x-square-hmacsha256-signature'), 'base64');
  const url = requireUrl(delivery, 'square');
  if (!anyMatches(delivery, [received], (secret) => hmac('sha256', secret, url, delivery.rawBody))) {
    refuse('The X-Square-HmacSha256-Signature signature does not match.');
  }
});

/** GitLab: `X-Gitlab-Token` is the secret token itself, compared in constant time. */
export const gitlab = synchronous((delivery) => {
  // Digests of equal length, so that the comparison's time says nothing about the token's length.
  const received = createHash('sha256').update(header(delivery, 'x-gitlab-token')).digest();
  if (!anyMatches(delivery, [received], (secret) => createHash('sha256').update(secret).digest())) {
    refuse('The X-Gitlab-Token does not match.');
  }
});

/**
 * Twilio: `X-Twilio-Signature`, base64 HMAC-SHA1 (keyed by the auth token) of the URL followed by the
 * form fields sorted by name; JSON bodies are signed through the URL's `bodySHA256` parameter instead.
 */
export const twilio = synchronous((delivery) => {
  const received = Buffer.from(header(delivery, 'x-twilio-signature'), 'base64');
  const url = requireUrl(delivery, 'twilio');
  let bodyHash: string | null;
  try {
    bodyHash = new URL(url).searchParams.get('bodySHA256');
  } catch {
    // A url function built from the request's own headers can yield an invalid URL for a forged request.
    return refuse('The URL this delivery was sent to is not valid.');
  }
  let signed = url;
  if (bodyHash !== null) {
    const actual = createHash('sha256').update(delivery.rawBody).digest('hex');
    if (!sameDigest(Buffer.from(actual), Buffer.from(bodyHash))) refuse('The body does not match the bodySHA256 parameter.');
  } else {
    const fields = new URLSearchParams(delivery.rawBody.toString('utf8'));
    const names = [...new Set(fields.keys())].sort();
    // As Twilio signs them: names sorted, and the values of a repeated name sorted too.
    signed += names
      .map((name) =>
        fields
          .getAll(name)
          .sort()
          .map((value) => name + value)
          .join(''),
      )
      .join('');
  }
  if (!anyMatches(delivery, [received], (secret) => hmac('sha1', secret, signed))) {
    refuse('The X-Twilio-Signature signature does not match.');
  }
});

/** Linear: `Linear-Signature`, hex HMAC-SHA256 of the body; the body's `webhookTimestamp` (ms) must be recent. */
export const linear = synchronous((delivery) => {
  const received = Buffer.from(header(delivery, 'linear-signature'), 'hex');
  if (!anyMatches(delivery, [received], (secret) => hmac('sha256', secret, delivery.rawBody))) {
    refuse('The Linear-Signature signature does not match.');
  }
  const timestamp = (delivery.body as { webhookTimestamp?: unknown } | null | undefined)?.webhookTimestamp;
  assertFresh(delivery, Number(timestamp) / 1000);
});
