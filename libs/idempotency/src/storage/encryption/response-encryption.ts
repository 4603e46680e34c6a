import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject, randomBytes } from 'node:crypto';
import { idempotencyKeyHash, scopeLabel } from '../../observability/idempotency-events';
import { IdempotencyConfigurationError } from '../../errors/configuration.errors';
import { IdempotencyDecryptionError } from '../../errors/decryption.errors';
import type { StoredResponse } from '../idempotency-store';

/**
 * One AES-256 key: its id is written beside every body it encrypts, so that the right key is found to read it.
 *
 * @example
 * { id: '2025-06', key: process.env.IDEMPOTENCY_KEY_2025_06! } // made with: openssl rand -base64 32
 */
export interface EncryptionKey {
  /** Printable ASCII without spaces, up to 64 characters, e.g. `'2025-06'`. Never reuse an id for other key bytes. */
  id: string;
  /** 32 random bytes: a Buffer, or their base64 (`openssl rand -base64 32`). */
  key: string | Buffer;
}

/**
 * Encryption at rest of stored responses (`IdempotencyModuleOptions.encryption`).
 *
 * @example
 * encryption: { keys: [{ id: '2025-06', key: process.env.IDEMPOTENCY_KEY_2025_06! }, { id: '2025-01', key: process.env.IDEMPOTENCY_KEY_2025_01! }] }
 */
export interface EncryptionOptions {
  /** The first key encrypts new bodies; every key decrypts. At least one. */
  keys: EncryptionKey[];
  /**
   * Reads bodies encrypted with `keys`, but stores new ones in clear: the way to turn encryption off
   * without losing the records it wrote, until they expire. Default `false`.
   */
  decryptOnly?: boolean;
}

/** Which record a body belongs to: the ciphertext is bound to it. */
export interface RecordAddress {
  scope: string;
  key: string;
}

/**
 * Envelope, version 1. A NUL first means no JSON or text body reads as one; the 8 bytes together make a
 * binary body that starts with them by chance as likely as a 64-bit collision.
 *
 *   magic "\0idemenc" (8) | version 1 (1) | key id length n (1) | key id (n) | IV (12) | ciphertext | GCM tag (16)
 *
 * The plaintext is the headers and the body: u32 length of the headers' JSON | headers' JSON | body bytes.
 * The authenticated data is the envelope up to the IV, then the record's scope and key (each prefixed by its
 * u32 byte length) and the status (u32): a body copied to another record, or given another status, fails.
 */
const MAGIC = Buffer.from('\0idemenc', 'latin1');
const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;
const KEY_ID = /^[\x21-\x7e]{1,64}$/;
/** Standard or URL-safe base64 (Node decodes both) of 32 bytes, with or without its padding. */
const BASE64_KEY = /^[A-Za-z0-9+/_-]{43}=?$/;
const MAKE_A_KEY = 'Make one with `openssl rand -base64 32` (or crypto.randomBytes(32)) and keep it in your secret store.';

/** Seals responses into envelopes and opens them; bodies without the envelope's magic pass through as they are. */
export class ResponseCipher {
  private readonly keys: ReadonlyMap<string, KeyObject>;
  private readonly sealWith?: { id: string; key: KeyObject };

  /** Without options: stores in clear, and refuses (rather than replays) a body that was stored encrypted. */
  constructor(options?: EncryptionOptions) {
    this.keys = options ? resolveKeys(options) : new Map();
    const [first] = this.keys;
    if (first && !options?.decryptOnly) this.sealWith = { id: first[0], key: first[1] };
  }

  /** Whether `seal()` encrypts. */
  get encrypts(): boolean {
    return this.sealWith !== undefined;
  }

  /** The response as stored: its headers and body in one envelope, the headers outside left empty. */
  seal(record: RecordAddress, response: StoredResponse): StoredResponse {
    if (!this.sealWith) return response;
    const header = envelopeHeader(this.sealWith.id);
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.sealWith.key, iv);
    cipher.setAAD(authenticatedData(header, record, response.status));
    const headers = Buffer.from(JSON.stringify(response.headers), 'utf8');
    const encrypted = [cipher.update(u32(headers.length)), cipher.update(headers), cipher.update(response.body), cipher.final()];
    return { status: response.status, headers: [], body: Buffer.concat([header, iv, ...encrypted, cipher.getAuthTag()]) };
  }

  /** The response as it was first sent. Throws {@link IdempotencyDecryptionError} rather than return bytes it cannot vouch for. */
  open(record: RecordAddress, stored: StoredResponse): StoredResponse {
    if (!isEnvelope(stored.body)) return stored;
    const { body } = stored;
    // The route and the key's hash, as the logs name a record: the tenant part of a scope stays out of them.
    const where = `The stored response of the record ${scopeLabel(record.scope)} key ${idempotencyKeyHash(record.scope, record.key)}`;
    const version = body[MAGIC.length];
    if (version !== VERSION) {
      throw new IdempotencyDecryptionError(`${where} is in envelope version ${version}, which this version of nestjs-idempotency cannot read.`);
    }
    const idLength = body[MAGIC.length + 1];
    const ivAt = MAGIC.length + 2 + idLength;
    if (idLength === 0 || body.length < ivAt + IV_BYTES + 4 + TAG_BYTES) {
      throw new IdempotencyDecryptionError(`${where} is a truncated encryption envelope.`);
    }
    const keyId = body.toString('latin1', MAGIC.length + 2, ivAt);
    // Shown in logs: bytes altered into something else than an id are not.
    if (!KEY_ID.test(keyId)) throw new IdempotencyDecryptionError(`${where} is an encryption envelope whose key id is malformed.`);
    const key = this.keys.get(keyId);
    if (!key) throw new IdempotencyDecryptionError(`${where} was encrypted with key "${keyId}", ${this.missing(keyId)}`, keyId);

    const decipher = createDecipheriv('aes-256-gcm', key, body.subarray(ivAt, ivAt + IV_BYTES), { authTagLength: TAG_BYTES });
    decipher.setAAD(authenticatedData(body.subarray(0, ivAt), record, stored.status));
    decipher.setAuthTag(body.subarray(body.length - TAG_BYTES));
    let plain: Buffer;
    try {
      plain = Buffer.concat([decipher.update(body.subarray(ivAt + IV_BYTES, body.length - TAG_BYTES)), decipher.final()]);
    } catch (error) {
      throw new IdempotencyDecryptionError(
        `${where} fails authentication with key "${keyId}": it was altered, copied from another record, or key ` +
          `"${keyId}" now holds other bytes than the ones that encrypted it.`,
        keyId,
        { cause: error },
      );
    }
    const headersEnd = 4 + plain.readUInt32BE(0);
    return {
      status: stored.status,
      headers: JSON.parse(plain.toString('utf8', 4, headersEnd)) as StoredResponse['headers'],
      body: plain.subarray(headersEnd),
    };
  }

  private missing(keyId: string): string {
    if (this.keys.size === 0) {
      return `but encryption is not configured. Add encryption: { keys: [{ id: '${keyId}', key }] } to IdempotencyModule.forRoot() (decryptOnly: true stores new bodies in clear).`;
    }
    const configured = [...this.keys.keys()].map((id) => `"${id}"`).join(', ');
    return `which is not among encryption.keys (${configured}). Add it back to encryption.keys (after the first one, which encrypts) until the records it encrypted expire.`;
  }
}

/** Whether a stored body is an encryption envelope (rather than a body stored in clear). */
export function isEnvelope(body: Uint8Array): boolean {
  return body.length > MAGIC.length && MAGIC.equals(body.subarray(0, MAGIC.length));
}

/** The id of the key that encrypted a stored body, read from its envelope; `undefined` for a body in clear. */
export function envelopeKeyId(body: Uint8Array): string | undefined {
  if (!isEnvelope(body) || body.length < MAGIC.length + 2) return undefined;
  const start = MAGIC.length + 2;
  return Buffer.from(body.subarray(start, start + body[MAGIC.length + 1])).toString('latin1');
}

function envelopeHeader(keyId: string): Buffer {
  const id = Buffer.from(keyId, 'latin1');
  return Buffer.concat([MAGIC, Buffer.from([VERSION, id.length]), id]);
}

function authenticatedData(header: Buffer, record: RecordAddress, status: number): Buffer {
  const scope = Buffer.from(record.scope, 'utf8');
  const key = Buffer.from(record.key, 'utf8');
  return Buffer.concat([header, u32(scope.length), scope, u32(key.length), key, u32(status)]);
}

function u32(value: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt32BE(value);
  return bytes;
}

/** Checks the keys at startup; a message never shows a key's bytes. */
function resolveKeys(options: EncryptionOptions): Map<string, KeyObject> {
  if (!Array.isArray(options.keys) || options.keys.length === 0) {
    throw new IdempotencyConfigurationError(
      `encryption.keys is empty: give at least one key, e.g. encryption: { keys: [{ id: '2025-06', key: process.env.IDEMPOTENCY_KEY }] }. ${MAKE_A_KEY}`,
    );
  }
  const keys = new Map<string, KeyObject>();
  options.keys.forEach((entry: EncryptionKey | undefined, index) => {
    const where = `encryption.keys[${index}]`;
    const { id, key } = entry ?? ({} as Partial<EncryptionKey>);
    if (typeof id !== 'string' || !KEY_ID.test(id)) {
      throw new IdempotencyConfigurationError(
        `${where}.id must be 1 to 64 printable ASCII characters without spaces (e.g. '2025-06'), not ${JSON.stringify(id)}.`,
      );
    }
    if (keys.has(id)) {
      throw new IdempotencyConfigurationError(`${where}.id "${id}" is given twice: each key needs its own id, as records name the key that encrypted them.`);
    }
    keys.set(id, createSecretKey(keyBytes(key, `${where}.key (id "${id}")`)));
  });
  return keys;
}

function keyBytes(key: unknown, where: string): Buffer {
  // A Buffer is a Uint8Array; a plain one (from a secret manager's client) is taken as well.
  if (key instanceof Uint8Array) {
    if (key.length !== KEY_BYTES) {
      throw new IdempotencyConfigurationError(`${where} is ${key.length} bytes; AES-256-GCM needs exactly ${KEY_BYTES}. ${MAKE_A_KEY}`);
    }
    return Buffer.from(key);
  }
  if (typeof key !== 'string') {
    throw new IdempotencyConfigurationError(`${where} must be a Buffer of ${KEY_BYTES} bytes or their base64, not ${typeof key}. ${MAKE_A_KEY}`);
  }
  const text = key.trim();
  if (!BASE64_KEY.test(text)) {
    const decoded = Buffer.from(text, 'base64').length;
    throw new IdempotencyConfigurationError(
      `${where} is not the base64 of ${KEY_BYTES} bytes (44 characters, the last one "="; this one has ${text.length} characters` +
        `${decoded > 0 ? `, ${decoded} bytes once decoded` : ''}). ${MAKE_A_KEY}`,
    );
  }
  return Buffer.from(text, 'base64');
}
