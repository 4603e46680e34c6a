import { createHash, createHmac, type KeyObject, timingSafeEqual, verify as verifySignature, X509Certificate } from 'node:crypto';
import { crc32 } from 'node:zlib';
import type { IncomingHttpHeaders } from 'node:http';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { WebhookSignatureInvalidException } from '../errors/idempotency.errors';
import { loadOptionalPeer } from '../optional-peer';

/** What a verifier gets: the bytes as they arrived, and how to judge them. */
export interface SignedDelivery {
  rawBody: Buffer;
  headers: IncomingHttpHeaders;
  /** The parsed body (Linear signs its timestamp inside it; Twilio signs form fields). */
  body: unknown;
  /** Any of these secrets verifies the delivery (several while one is being rotated). */
  secrets: readonly string[];
  /** The largest accepted distance between a signed timestamp and now, in seconds. */
  toleranceSeconds: number;
  /** Square and Twilio sign the URL they called: the endpoint's public URL. */
  url: string | undefined;
  /** PayPal: fetches the PEM certificate at a PayPal URL (default: `fetch`, cached per URL). */
  certificate?: (url: string) => Promise<string>;
}

/** Throws `WebhookSignatureInvalidException` unless the delivery is signed by one of the secrets. */
export type WebhookVerifier = (delivery: SignedDelivery) => Promise<void>;

const refuse = (detail: string): never => {
  throw new WebhookSignatureInvalidException(detail);
};

/** A verifier from a check that needs no I/O: what the check throws rejects the promise, as the type says. */
function synchronous(check: (delivery: SignedDelivery) => void): WebhookVerifier {
  return (delivery) => new Promise<void>((resolve) => resolve(check(delivery)));
}

function header(delivery: SignedDelivery, name: string): string {
  const value = delivery.headers[name];
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text === '' ? refuse(`The ${name} header is missing.`) : text;
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

function assertFresh(delivery: SignedDelivery, timestampSeconds: number): void {
  if (!Number.isFinite(timestampSeconds)) refuse('The signed timestamp is not a number.');
  const age = Math.abs(Date.now() / 1000 - timestampSeconds);
  if (age > delivery.toleranceSeconds) {
    refuse(`The delivery was signed ${Math.round(age)} s away from now, beyond the tolerance of ${delivery.toleranceSeconds} s.`);
  }
}

function requireUrl(delivery: SignedDelivery, provider: string): string {
  if (delivery.url) return delivery.url;
  throw new IdempotencyConfigurationError(
    `@VerifyWebhook('${provider}') needs the url option: ${provider} signs the public URL it calls, which the app cannot ` +
      'know behind proxies. Give it as a string, or a function of the request.',
  );
}

interface StripeWebhooks {
  signature: { verifyHeader(payload: Buffer, header: string, secret: string, tolerance: number): boolean } | null;
}

/** Stripe's own check, by the `stripe` package: `Stripe-Signature` with `t=` and one or more `v1=`. */
const stripe: WebhookVerifier = async (delivery) => {
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
const github: WebhookVerifier = async (delivery) => {
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
function standardWebhooks(prefix: 'webhook' | 'svix'): WebhookVerifier {
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

/** Shopify: `X-Shopify-Hmac-Sha256`, base64 HMAC-SHA256 of the body. Shopify signs no timestamp. */
const shopify = synchronous((delivery) => {
  const received = Buffer.from(header(delivery, 'x-shopify-hmac-sha256'), 'base64');
  if (!anyMatches(delivery, [received], (secret) => hmac('sha256', secret, delivery.rawBody))) {
    refuse('The X-Shopify-Hmac-Sha256 signature does not match.');
  }
});

/** Paddle Billing: `Paddle-Signature: ts=...;h1=...` (an `h1` per secret while one rotates), HMAC of `ts:body`. */
const paddle = synchronous((delivery) => {
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
const slack = synchronous((delivery) => {
  const timestamp = header(delivery, 'x-slack-request-timestamp');
  const [version, hex] = header(delivery, 'x-slack-signature').split('=', 2);
  if (version !== 'v0' || !hex) refuse('The X-Slack-Signature header is not a v0 signature.');
  assertFresh(delivery, Number(timestamp));
  if (!anyMatches(delivery, [Buffer.from(hex, 'hex')], (secret) => hmac('sha256', secret, `v0:${timestamp}:`, delivery.rawBody))) {
    refuse('The X-Slack-Signature signature does not match.');
  }
});

/** Square: `X-Square-HmacSha256-Signature`, base64 HMAC-SHA256 of the notification URL and the body. */
const square = synchronous((delivery) => {
  const received = Buffer.from(header(delivery, 'x-square-hmacsha256-signature'), 'base64');
  const url = requireUrl(delivery, 'square');
  if (!anyMatches(delivery, [received], (secret) => hmac('sha256', secret, url, delivery.rawBody))) {
    refuse('The X-Square-HmacSha256-Signature signature does not match.');
  }
});

/** GitLab: `X-Gitlab-Token` is the secret token itself, compared in constant time. */
const gitlab = synchronous((delivery) => {
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
const twilio = synchronous((delivery) => {
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
const linear = synchronous((delivery) => {
  const received = Buffer.from(header(delivery, 'linear-signature'), 'hex');
  if (!anyMatches(delivery, [received], (secret) => hmac('sha256', secret, delivery.rawBody))) {
    refuse('The Linear-Signature signature does not match.');
  }
  const timestamp = (delivery.body as { webhookTimestamp?: unknown } | null | undefined)?.webhookTimestamp;
  assertFresh(delivery, Number(timestamp) / 1000);
});

const PAYPAL_CERTIFICATE_HOSTS = /^api(-m)?(\.sandbox)?\.paypal\.com$/;
const certificates = new Map<string, Promise<KeyObject>>();

async function fetchCertificate(url: string): Promise<string> {
  const response = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!response.ok) throw new Error(`PayPal's certificate at ${url} answered ${response.status}`);
  return response.text();
}

/**
 * PayPal, offline: `PAYPAL-TRANSMISSION-SIG` is an RSA-SHA256 signature of
 * `<transmission id>|<transmission time>|<webhook id>|<CRC32 of the body>`, made with the key of the
 * certificate at `PAYPAL-CERT-URL`, which must be one of PayPal's API hosts over https. The secret is the
 * webhook id from PayPal's developer portal. Certificates are fetched once per URL.
 */
const paypal: WebhookVerifier = async (delivery) => {
  const [id, time, signature, certUrl, algorithm] = ['id', 'time', 'sig', 'cert-url', 'auth-algo'].map((part) =>
    header(delivery, part.startsWith('cert') || part.startsWith('auth') ? `paypal-${part}` : `paypal-transmission-${part}`),
  );
  if (algorithm !== 'SHA256withRSA') refuse(`PAYPAL-AUTH-ALGO ${algorithm} is not SHA256withRSA.`);
  let host: URL;
  try {
    host = new URL(certUrl);
  } catch {
    return refuse('PAYPAL-CERT-URL is not a URL.');
  }
  // The certificate is the trust anchor: only PayPal's own hosts, over TLS, may hand it out.
  if (host.protocol !== 'https:' || !PAYPAL_CERTIFICATE_HOSTS.test(host.hostname)) refuse('PAYPAL-CERT-URL is not a PayPal API URL.');
  assertFresh(delivery, Date.parse(time) / 1000);
  let key = certificates.get(certUrl);
  if (!key) {
    key = (delivery.certificate ?? fetchCertificate)(certUrl).then((pem) => {
      const certificate = new X509Certificate(pem);
      if (Date.parse(certificate.validTo) < Date.now()) throw new Error('PayPal certificate expired');
      return certificate.publicKey;
    });
    certificates.set(certUrl, key);
    // A failed fetch is not kept: the next delivery tries again.
    key.catch(() => certificates.delete(certUrl));
  }
  const publicKey = await key.catch((error: Error) => refuse(`PayPal's certificate could not be used: ${error.message}`));
  const checksum = crc32(delivery.rawBody);
  const signatureBytes = Buffer.from(signature, 'base64');
  const valid = delivery.secrets.some((webhookId) =>
    verifySignature('sha256', Buffer.from(`${id}|${time}|${webhookId}|${checksum}`), publicKey, signatureBytes),
  );
  if (!valid) refuse('The PAYPAL-TRANSMISSION-SIG signature does not match.');
};

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
