import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { IdempotencyConfigurationError } from '../../errors/configuration.errors';
import { IdempotencyDecryptionError } from '../../errors/decryption.errors';
import type { StoredResponse } from '../idempotency-store';
import { type EncryptionKey, isEnvelope, ResponseCipher } from './response-encryption';

const keyA: EncryptionKey = { id: 'key-a', key: randomBytes(32) };
const keyB: EncryptionKey = { id: 'key-b', key: randomBytes(32).toString('base64') };
const record = { scope: 'POST /orders#tenant-1', key: 'order-42' };
const response: StoredResponse = {
  status: 201,
  headers: [
    ['content-type', 'application/json; charset=utf-8'],
    ['location', '/orders/42'],
  ],
  body: Buffer.from('{"id":42,"card":"4242 4242 4242 4242"}'),
};

/** What a read throws, or fails the test if it does not. */
function failure(read: () => unknown): IdempotencyDecryptionError {
  try {
    read();
  } catch (error) {
    expect(error).toBeInstanceOf(IdempotencyDecryptionError);
    return error as IdempotencyDecryptionError;
  }
  throw new Error('the read did not fail');
}

function configurationFailure(keys: unknown): string {
  try {
    new ResponseCipher({ keys: keys as EncryptionKey[] });
  } catch (error) {
    expect(error).toBeInstanceOf(IdempotencyConfigurationError);
    return (error as Error).message;
  }
  throw new Error('the keys were accepted');
}

describe('response encryption', () => {
  const cipher = new ResponseCipher({ keys: [keyA] });

  it('seals headers and body into one envelope that shows neither, and opens it to the same bytes', () => {
    const sealed = cipher.seal(record, response);
    expect(sealed.status).toBe(201);
    expect(sealed.headers).toEqual([]);
    expect(isEnvelope(sealed.body)).toBe(true);
    expect(sealed.body.includes('4242')).toBe(false);
    expect(sealed.body.includes('/orders/42')).toBe(false);
    expect(sealed.body.includes('application/json')).toBe(false);
    expect(cipher.open(record, sealed)).toEqual(response);
  });

  it('round-trips any status, headers and bytes, an empty body included', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 100, max: 599 }),
        fc.array(fc.tuple(fc.string({ minLength: 1 }), fc.string())),
        fc.uint8Array({ maxLength: 2048 }),
        fc.string(),
        fc.string(),
        (status, headers, body, scope, key) => {
          const plain = { status, headers, body: Buffer.from(body) };
          const opened = cipher.open({ scope, key }, cipher.seal({ scope, key }, plain));
          expect(opened.status).toBe(status);
          expect(opened.headers).toEqual(headers);
          expect(opened.body.equals(plain.body)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('uses a new IV for every seal', () => {
    expect(cipher.seal(record, response).body.equals(cipher.seal(record, response).body)).toBe(false);
  });

  it.each([
    ['another scope', { ...record, scope: 'POST /orders#tenant-2' }, 201],
    ['another key', { ...record, key: 'order-43' }, 201],
    ['a key and scope split elsewhere', { scope: 'POST /orders#tenant-1order', key: '-42' }, 201],
    ['another status', record, 200],
  ])('refuses a body read as %s: it is bound to its record', (_, elsewhere, status) => {
    const sealed = cipher.seal(record, response);
    const error = failure(() => cipher.open(elsewhere, { ...sealed, status }));
    expect(error.message).toMatch(/fails authentication with key "key-a"/);
    expect(error.keyId).toBe('key-a');
  });

  it('refuses a body with any byte of its IV, ciphertext or tag altered', () => {
    const sealed = cipher.seal(record, response);
    const ivAt = 8 + 2 + keyA.id.length;
    for (let at = ivAt; at < sealed.body.length; at++) {
      const altered = Buffer.from(sealed.body);
      altered[at] ^= 0x01;
      expect(() => cipher.open(record, { ...sealed, body: altered })).toThrow(IdempotencyDecryptionError);
    }
  });

  it('refuses an envelope cut short, or of a version it does not know', () => {
    const sealed = cipher.seal(record, response);
    expect(failure(() => cipher.open(record, { ...sealed, body: sealed.body.subarray(0, 30) })).message).toMatch(/truncated/);
    const newer = Buffer.from(sealed.body);
    newer[8] = 2;
    expect(failure(() => cipher.open(record, { ...sealed, body: newer })).message).toMatch(/envelope version 2/);
  });

  it('names a key id that is not configured, and says to add it back', () => {
    const sealed = new ResponseCipher({ keys: [keyB] }).seal(record, response);
    const error = failure(() => cipher.open(record, sealed));
    expect(error.keyId).toBe('key-b');
    expect(error.message).toContain('encrypted with key "key-b", which is not among encryption.keys ("key-a")');
    expect(error.message).not.toContain('4242');
  });

  it('does not show an altered key id', () => {
    const sealed = cipher.seal(record, response);
    const altered = Buffer.from(sealed.body);
    altered[10] = 0x0a;
    expect(failure(() => cipher.open(record, { ...sealed, body: altered })).message).toMatch(/key id is malformed/);
  });

  it('passes a body stored in clear through as it is', () => {
    for (const body of [response.body, Buffer.alloc(0), Buffer.from([0, 1, 2, 3]), Buffer.from('\0idemenc', 'latin1')]) {
      const plain = { ...response, body };
      expect(cipher.open(record, plain)).toBe(plain);
    }
  });

  it('rotates: the first key encrypts, every key decrypts', () => {
    const underA = cipher.seal(record, response);
    const rotated = new ResponseCipher({ keys: [keyB, keyA] });
    expect(rotated.open(record, underA)).toEqual(response);
    const underB = rotated.seal(record, response);
    expect(underB.body.subarray(10, 10 + keyB.id.length).toString('latin1')).toBe('key-b');
    expect(new ResponseCipher({ keys: [keyB] }).open(record, underB)).toEqual(response);
    expect(() => cipher.open(record, underB)).toThrow(IdempotencyDecryptionError);
  });

  it('decryptOnly: opens with its keys, stores in clear', () => {
    const decryptOnly = new ResponseCipher({ keys: [keyA], decryptOnly: true });
    expect(decryptOnly.encrypts).toBe(false);
    expect(decryptOnly.seal(record, response)).toBe(response);
    expect(decryptOnly.open(record, cipher.seal(record, response))).toEqual(response);
  });

  it('without encryption: stores in clear and refuses an encrypted body, saying how to read it', () => {
    const off = new ResponseCipher();
    expect(off.seal(record, response)).toBe(response);
    const error = failure(() => off.open(record, cipher.seal(record, response)));
    expect(error.message).toMatch(/encrypted with key "key-a", but encryption is not configured/);
  });

  describe('checks the keys at startup, saying how to make one, never showing one', () => {
    const base64Of = (bytes: number) => randomBytes(bytes).toString('base64');

    it.each([
      ['no keys', []],
      ['no list', undefined],
    ])('%s', (_, keys) => {
      expect(configurationFailure(keys)).toMatch(/encryption.keys is empty.*openssl rand -base64 32/);
    });

    it('a Buffer of another length', () => {
      expect(configurationFailure([{ id: 'a', key: randomBytes(16) }])).toMatch(
        /keys\[0\]\.key \(id "a"\) is 16 bytes; AES-256-GCM needs exactly 32.*openssl rand -base64 32/,
      );
    });

    it('base64 of another length, or hex, or nothing', () => {
      const short = base64Of(16);
      expect(configurationFailure([{ id: 'a', key: short }])).toMatch(/not the base64 of 32 bytes.*24 characters, 16 bytes once decoded.*openssl/);
      expect(
        configurationFailure([
          { id: 'a', key: base64Of(32) },
          { id: 'b', key: randomBytes(32).toString('hex') },
        ]),
      ).toMatch(/keys\[1\].*48 bytes once decoded/);
      expect(configurationFailure([{ id: 'a', key: undefined }])).toMatch(/must be a Buffer of 32 bytes or their base64, not undefined/);
      expect(configurationFailure([{ id: 'a', key: short }])).not.toContain(short);
    });

    it('duplicate or malformed ids', () => {
      expect(configurationFailure([keyA, { ...keyB, id: keyA.id }])).toMatch(/keys\[1\]\.id "key-a" is given twice/);
      expect(configurationFailure([{ ...keyA, id: 'has space' }])).toMatch(/printable ASCII characters without spaces/);
      expect(configurationFailure([{ ...keyA, id: '' }])).toMatch(/keys\[0\]\.id/);
      expect(configurationFailure([null])).toMatch(/keys\[0\]\.id/);
    });

    it('takes base64 with or without padding, URL-safe, and surrounded by a newline', () => {
      const bytes = randomBytes(32);
      const sealed = new ResponseCipher({ keys: [{ id: 'a', key: bytes }] }).seal(record, response);
      for (const key of [bytes.toString('base64'), bytes.toString('base64url'), `${bytes.toString('base64')}\n`]) {
        expect(new ResponseCipher({ keys: [{ id: 'a', key }] }).open(record, sealed)).toEqual(response);
      }
    });
  });
});
