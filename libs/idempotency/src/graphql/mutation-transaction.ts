import type { ExecutionContext } from '@nestjs/common';
import type { EntityManagerLike } from '../storage/typeorm-like';

/**
 * The claim's transaction of each mutation field that runs in transaction mode, by the field's resolve info:
 * one per field, which the interceptor and `@IdempotentTransaction()` both receive with the resolver's call.
 */
const managers = new WeakMap<object, EntityManagerLike>();

export function setMutationTransaction(info: object, manager: EntityManagerLike): void {
  managers.set(info, manager);
}

/** The transaction of the mutation field that `context` resolves, if it runs in one. */
export function mutationTransactionOf(context: ExecutionContext): EntityManagerLike | undefined {
  const info = context.getArgByIndex<unknown>(3);
  return typeof info === 'object' && info !== null ? managers.get(info) : undefined;
}
