import { type KeyObject, verify as verifySignature, X509Certificate } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { assertFresh, header, refuse, type WebhookVerifier } from './signed-delivery';

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
export const paypal: WebhookVerifier = async (delivery) => {
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
