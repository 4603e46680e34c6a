import type { IncomingHttpHeaders } from 'node:http';
import { WebhookSignatureInvalidException } from '../errors/idempotency.errors';

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

export const refuse = (detail: string): never => {
  throw new WebhookSignatureInvalidException(detail);
};

export function header(delivery: SignedDelivery, name: string): string {
  const value = delivery.headers[name];
  const text = Array.isArray(value) ? value[0] : value;
  return text === undefined || text === '' ? refuse(`The ${name} header is missing.`) : text;
}

export function assertFresh(delivery: SignedDelivery, timestampSeconds: number): void {
  if (!Number.isFinite(timestampSeconds)) refuse('The signed timestamp is not a number.');
  const age = Math.abs(Date.now() / 1000 - timestampSeconds);
  if (age > delivery.toleranceSeconds) {
    refuse(`The delivery was signed ${Math.round(age)} s away from now, beyond the tolerance of ${delivery.toleranceSeconds} s.`);
  }
}
