import { type CallHandler, type ExecutionContext, Injectable, Logger } from '@nestjs/common';
import { defer, lastValueFrom, type Observable } from 'rxjs';
import { ClaimCoordinator } from '../claim/claim-coordinator';
import type { BeginOutcome } from '../claim/held-claim';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import {
  IdempotencyException,
  IdempotencyKeyInUseException,
  IdempotencyKeyMissingException,
  IdempotencyKeyReusedException,
  IdempotencyStoreUnavailableException,
} from '../errors/idempotency.errors';
import { canonicalBody, sha256 } from '../fingerprint';
import { type Awaitable, callRequestFunction, type RequestFunctionBound } from '../keys/request-function';
import { buildScope, readTenant } from '../keys/scope';
import { isTransactional, type StoredResponse } from '../storage/idempotency-store';
import { runClaimedMutation } from './claimed-mutation';
import { runWithClaim } from '../claim/claim-context';
import { type GraphQLInfoLike, type GraphQLMutationCall, isRootMutationField, mutationCallOf } from './mutation-call';
import { decodeError, IdempotencyGraphQLError, isStoredError } from './mutation-errors';
import { findMutationKey } from './mutation-keys';
import type { MutationPlan } from './mutation-plan';
import { MutationPlans } from './mutation-plans';
import { setMutationTransaction } from './mutation-transaction';
import { markField, wentThroughPlugin } from './replay-marks';
import { decodeResult } from './stored-result';

/**
 * `@Idempotent()` on GraphQL mutations, called by the interceptor for the `graphql` context. Each root field of
 * a mutation operation that has a plan is claimed on its own (scope: `GRAPHQL Mutation.field`, fingerprint: its
 * arguments), then replayed, refused with a GraphQL error, or run under its claim. Other fields pass untouched.
 */
@Injectable()
export class IdempotentMutations {
  private readonly logger = new Logger('Idempotency');
  private pluginChecked = false;

  constructor(
    private readonly coordinator: ClaimCoordinator,
    private readonly plans: MutationPlans,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const info = context.getArgByIndex<GraphQLInfoLike | undefined>(3);
    const plan = isRootMutationField(info) ? this.plans.planFor(context.getClass(), context.getHandler()) : undefined;
    if (!plan) return next.handle();
    return defer(() => this.handle(mutationCallOf(context), plan, next));
  }

  private async handle(call: GraphQLMutationCall, plan: MutationPlan, next: CallHandler): Promise<unknown> {
    this.checkPlugin(call.context);
    const responseKey = String(call.info.path.key);
    let outcome: BeginOutcome | undefined;
    let identity = { scope: '', key: '' };
    try {
      const bound: RequestFunctionBound = { route: call.field, deadline: Date.now() + plan.waitTimeoutMs };
      const key = await findMutationKey(plan.key, call, bound);
      if (key === undefined) {
        if (plan.required) throw new IdempotencyKeyMissingException(`${call.field} needs an idempotency key.`);
      } else {
        const tenant = await readTenant(plan.scope, call, bound);
        const scope = buildScope(`GRAPHQL ${call.field}`, undefined, tenant);
        const fingerprint = await fingerprintOf(plan, call, bound);
        identity = { scope, key };
        outcome = await this.begin(plan, { scope, key, fingerprint, deadline: bound.deadline });
      }
    } catch (error) {
      throw refusal(error, call, responseKey);
    }
    if (!outcome) {
      // required: false and no key: the resolver runs without idempotency (in the store's transaction manager, if asked).
      const { store } = this.coordinator;
      if (plan.transaction && isTransactional(store)) setMutationTransaction(call.info, store.manager);
      return lastValueFrom(next.handle(), { defaultValue: undefined });
    }
    switch (outcome.status) {
      case 'completed':
        markField(call.context, responseKey, { replayed: true });
        return replay(outcome.response);
      case 'fingerprint-mismatch':
        throw refusal(new IdempotencyKeyReusedException(), call, responseKey);
      case 'in-flight':
        throw refusal(new IdempotencyKeyInUseException(Math.max(1, Math.ceil(outcome.retryAfterMs / 1000))), call, responseKey);
      case 'claimed': {
        markField(call.context, responseKey, { replayed: false });
        const { claim } = outcome;
        if (claim.mode === 'transaction') setMutationTransaction(call.info, claim.manager);
        return runWithClaim({ ...identity, attempt: claim.attempt }, () => runClaimedMutation(claim, plan, call, next));
      }
    }
  }

  private async begin(plan: MutationPlan, target: { scope: string; key: string; fingerprint: string | null; deadline: number }): Promise<BeginOutcome> {
    try {
      return await this.coordinator.begin({
        ...target,
        ttlMs: plan.ttlMs,
        leaseMs: plan.leaseMs,
        maxLeaseMs: plan.maxLeaseMs,
        waitTimeoutMs: plan.waitTimeoutMs,
        onInFlight: plan.onInFlight,
        transaction: plan.transaction,
      });
    } catch (error) {
      if (error instanceof IdempotencyConfigurationError) throw error;
      // The coordinator has reported (and logged) it; the field gets the retryable store error.
      throw new IdempotencyStoreUnavailableException();
    }
  }

  /** Without the plugin a replay is still the stored answer, but nothing in the response says so: said once. */
  private checkPlugin(context: unknown): void {
    if (this.pluginChecked) return;
    this.pluginChecked = true;
    if (!wentThroughPlugin(context)) {
      this.logger.warn(
        'An @Idempotent() mutation ran without IdempotencyApolloPlugin: replays are not marked in extensions.idempotency ' +
          'nor by Idempotent-Replayed. Add plugins: [new IdempotencyApolloPlugin()] to GraphQLModule.forRoot().',
      );
    }
  }
}

/** The default fingerprint: the mutation (type and field) and the canonical JSON of its arguments. */
function fingerprintOf(plan: MutationPlan, call: GraphQLMutationCall, bound: RequestFunctionBound): Awaitable<string | null> {
  if (plan.fingerprint === false) return null;
  if (typeof plan.fingerprint === 'function') return callRequestFunction(plan.fingerprint, call, 'mutation fingerprint', bound);
  return sha256('GRAPHQL', call.field, canonicalBody(call.args));
}

function replay(response: StoredResponse): unknown {
  if (isStoredError(response.body)) throw decodeError(response.body);
  return decodeResult(response.body);
}

/** The library's answer as the field's GraphQL error, its retry hint noted for the response; other errors as they are. */
function refusal(error: unknown, call: GraphQLMutationCall, responseKey: string): unknown {
  if (!(error instanceof IdempotencyException)) return error;
  const graphqlError = new IdempotencyGraphQLError(error);
  markField(call.context, responseKey, {
    replayed: false,
    ...(graphqlError.extensions.retryAfter === undefined ? {} : { retryAfter: graphqlError.extensions.retryAfter }),
  });
  return graphqlError;
}
