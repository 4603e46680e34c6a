/**
 * A stored response that cannot be decrypted: encrypted with a key no longer in `encryption.keys` (or with
 * encryption turned off), altered, or copied from another record. It is never replayed: the store read
 * fails, so an HTTP request gets `503 IDEMPOTENCY_STORE_UNAVAILABLE` (its handler does not run) and the
 * message, which names the key id but never shows key or body bytes, is logged as an error.
 *
 * @example
 * try {
 *   await idempotency.find(jobId);
 * } catch (error) {
 *   if (error instanceof IdempotencyDecryptionError) alertOnCall(`restore key ${error.keyId}`);
 *   throw error;
 * }
 */
export class IdempotencyDecryptionError extends Error {
  override readonly name = 'IdempotencyDecryptionError';

  constructor(
    message: string,
    /** The id of the key that encrypted the response, when the envelope names one. */
    readonly keyId?: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
