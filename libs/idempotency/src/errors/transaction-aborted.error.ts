/**
 * A transactional claim could not store its answer because a statement of the handler failed inside the
 * claim's transaction (and the handler caught it): the database refuses every statement after that, so
 * nothing of the handler was committed. The store has rolled the transaction back when it throws this.
 */
export class TransactionAbortedError extends Error {
  constructor(options?: { cause?: unknown }) {
    super("A statement of the handler failed inside the claim's transaction, which was rolled back: nothing the handler wrote was committed.", options);
    this.name = 'TransactionAbortedError';
  }
}
