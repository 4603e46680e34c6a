/** Metadata key of `@Idempotent()` options on a handler or controller class. */
export const IDEMPOTENT_OPTIONS = Symbol('nestjs-idempotency:options');

/** Where the interceptor leaves the claim's EntityManager on the request for `@IdempotentTransaction()`. */
export const IDEMPOTENT_TRANSACTION = Symbol('nestjs-idempotency:transaction');

/** Set by Nest (a registered symbol) on a request whose pipes rejected it, so its handler never ran. */
export const REJECTED_BY_PIPES = Symbol.for('nestjs:rejected-by-pipes');

/** Metadata key of `@VerifyWebhook()` on a handler or controller class. */
export const VERIFY_WEBHOOK = Symbol('nestjs-idempotency:verify-webhook');
