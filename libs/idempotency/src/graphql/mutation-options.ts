import type { IdempotentOptions } from '../idempotency.options';
import type { GraphQLMutationCall } from './mutation-call';

/** A function of the mutation call that returns its key (a string or number), `undefined` for none, or a promise of it. */
export type MutationKeyFunction<TArgs = Record<string, unknown>, TContext = unknown> = (call: GraphQLMutationCall<TArgs, TContext>) => unknown;

/**
 * One place a mutation's key can come from: the `Idempotency-Key` header of the HTTP request (`'header'`),
 * another header, one of the mutation's arguments, or a function of the call.
 */
export type MutationKeySourceItem<TArgs = Record<string, unknown>, TContext = unknown> =
  'header' | { header: string } | { argument: keyof TArgs & string } | MutationKeyFunction<TArgs, TContext>;

/**
 * Where a mutation's key comes from: one source, or several of which the first that yields a key wins.
 *
 * @example
 * \@Idempotent({ key: [{ argument: 'idempotencyKey' }, 'header'] })
 */
export type MutationKeySource<TArgs = Record<string, unknown>, TContext = unknown> =
  MutationKeySourceItem<TArgs, TContext> | ReadonlyArray<MutationKeySourceItem<TArgs, TContext>>;

/**
 * `@Idempotent()` on a GraphQL mutation resolver. The scope is the mutation (`Mutation.placeOrder`), the
 * fingerprint its arguments; `scope` and `fingerprint` functions receive the {@link GraphQLMutationCall}.
 * `order` and `replayHeaders` have no meaning here. Of the module's defaults, the durations and policies apply;
 * its `key`, `scope` and `fingerprint` are the HTTP routes' and do not.
 *
 * @example
 * \@Mutation(() => Order)
 * \@Idempotent({ key: { argument: 'idempotencyKey' }, transaction: true })
 * placeOrder(@Args('idempotencyKey') _key: string, @Args('input') input: OrderInput, @IdempotentTransaction() em: EntityManager) {}
 */
export interface IdempotentMutationOptions<TArgs = Record<string, unknown>, TContext = unknown> extends Omit<
  IdempotentOptions<GraphQLMutationCall<TArgs, TContext>>,
  'key' | 'order' | 'replayHeaders'
> {
  /** Where the key comes from. Default `'header'` (`Idempotency-Key` of the HTTP request). */
  key?: MutationKeySource<TArgs, TContext>;
}
