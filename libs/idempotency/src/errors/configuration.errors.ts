/**
 * A mistake in how the library is set up or used by the application. Its message says how to fix it.
 * These are programming errors: they surface as 500s and in the logs, never as a client-facing answer.
 */
export class IdempotencyConfigurationError extends Error {
  override readonly name = 'IdempotencyConfigurationError';
}

/**
 * An idempotent route produced a response that cannot be stored for replay (a stream, or a body over
 * `maxResponseBytes`). The claim is released and the request fails loudly rather than replaying wrongly.
 */
export class UnstorableResponseError extends IdempotencyConfigurationError {}
