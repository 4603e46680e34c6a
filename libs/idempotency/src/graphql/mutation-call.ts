import type { ExecutionContext } from '@nestjs/common';
import type { IdempotencyRequest } from '../idempotency-request';

/**
 * What the library reads of a resolver's `GraphQLResolveInfo`: structural, so that the library compiles
 * and runs where `graphql` is not installed.
 */
export interface GraphQLInfoLike {
  readonly fieldName: string;
  readonly path: { readonly key: string | number };
  readonly parentType: { readonly name: string };
  readonly operation: { readonly operation: string };
}

/**
 * One mutation field as its key, scope and fingerprint functions see it: the field's arguments, the
 * operation's GraphQL context, and the HTTP request that carried it (where the context holds one).
 *
 * @example
 * \@Mutation(() => Order) \@Idempotent({ key: (call: GraphQLMutationCall<{ input: OrderInput }>) => call.args.input.requestId })
 */
export interface GraphQLMutationCall<TArgs = Record<string, unknown>, TContext = unknown> {
  /** `Mutation.placeOrder`: the type and field, which are the record's scope. */
  readonly field: string;
  readonly args: TArgs;
  readonly context: TContext;
  readonly info: GraphQLInfoLike;
  /** The HTTP request of the operation: `context.req` (Apollo on Express or Fastify), `context.reply.request` (Mercurius). */
  readonly request?: IdempotencyRequest;
}

/** The call of a resolver as Nest hands it to an interceptor: `[root, args, context, info]`. */
export function mutationCallOf(context: ExecutionContext): GraphQLMutationCall {
  const [, args, graphqlContext, info] = context.getArgs<[unknown, Record<string, unknown> | undefined, unknown, GraphQLInfoLike]>();
  return {
    field: `${info.parentType.name}.${info.fieldName}`,
    args: args ?? {},
    context: graphqlContext,
    info,
    request: httpRequestOf(graphqlContext),
  };
}

/** A root field of a mutation operation: its nested fields and every query or subscription pass untouched. */
export function isRootMutationField(info: GraphQLInfoLike | undefined): info is GraphQLInfoLike {
  return info?.operation?.operation === 'mutation' && typeof info.path === 'object' && (info.path as { prev?: unknown }).prev === undefined;
}

function httpRequestOf(context: unknown): IdempotencyRequest | undefined {
  if (typeof context !== 'object' || context === null) return undefined;
  const { req, request, reply } = context as { req?: unknown; request?: unknown; reply?: { request?: unknown } };
  for (const candidate of [req, request, reply?.request]) if (isRequest(candidate)) return candidate;
  return undefined;
}

function isRequest(value: unknown): value is IdempotencyRequest {
  return typeof value === 'object' && value !== null && typeof (value as { headers?: unknown }).headers === 'object';
}
