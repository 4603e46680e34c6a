import { createParamDecorator, type ExecutionContext } from '@nestjs/common';
import type { EntityManagerLike } from './storage/typeorm-like';
import { IdempotencyConfigurationError } from './errors/configuration.errors';
import { IDEMPOTENT_TRANSACTION } from './idempotency.constants';
import { mutationTransactionOf } from './graphql/mutation-transaction';

/**
 * Injects the EntityManager of the claim's transaction (`@Idempotent({ transaction: true })`):
 * what the handler writes through it commits together with the stored response, or not at all.
 *
 * @example
 * \@Post('orders') \@Idempotent({ transaction: true })
 * create(@Body() dto: CreateOrder, @IdempotentTransaction() em: EntityManager) {
 *   return em.getRepository(Order).save(dto);
 * }
 */
export const IdempotentTransaction = createParamDecorator((_data: unknown, context: ExecutionContext): EntityManagerLike => {
  const manager =
    context.getType<string>() === 'graphql'
      ? mutationTransactionOf(context)
      : context.switchToHttp().getRequest<Record<symbol, EntityManagerLike | undefined>>()[IDEMPOTENT_TRANSACTION];
  if (!manager) {
    throw new IdempotencyConfigurationError(
      '@IdempotentTransaction() needs the route (or mutation) to be @Idempotent({ transaction: true }) (or that default in forRoot()).',
    );
  }
  return manager;
});
