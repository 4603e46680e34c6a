import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import type { IdempotencyModuleOptions } from '../idempotency.options';
import type { RoutePlan } from '../plan/route-plan';
import { resolveRoutePlan } from '../plan/route-plan.resolver';
import type { FingerprintFunction, ScopeFunction } from '../route-functions';
import type { GraphQLMutationCall } from './mutation-call';
import { assertMutationKeySource } from './mutation-keys';
import type { IdempotentMutationOptions, MutationKeySource } from './mutation-options';

/** What an idempotent mutation does, resolved once at start: a route's plan with the mutation's key, scope and fingerprint. */
export interface MutationPlan extends Omit<RoutePlan, 'key' | 'scope' | 'fingerprint' | 'order' | 'replayHeaders'> {
  key: MutationKeySource;
  scope?: ScopeFunction<GraphQLMutationCall>;
  fingerprint: boolean | FingerprintFunction<GraphQLMutationCall>;
}

/**
 * Merges a mutation's options over the module's and checks them with a route's rules (durations, lease, policies,
 * transaction mode), naming the resolver (`OrdersResolver.placeOrder`). The module's `key`, `scope` and
 * `fingerprint` are functions of an HTTP request: a mutation uses its own, or the defaults.
 */
export function resolveMutationPlan(defaults: IdempotencyModuleOptions, own: IdempotentMutationOptions, name: string): MutationPlan {
  const where = `@Idempotent() on ${name}`;
  const unused = (['order', 'replayHeaders'] as const).filter((option) => (own as Record<string, unknown>)[option] !== undefined);
  if (unused.length > 0) {
    throw new IdempotencyConfigurationError(`${where}: ${unused.join(' and ')} has no meaning on a GraphQL mutation; remove it.`);
  }
  const key = own.key ?? 'header';
  assertMutationKeySource(key, where);
  const { key: _httpKey, scope: _httpScope, fingerprint: _httpFingerprint, ...policies } = defaults;
  const plan = resolveRoutePlan(policies, { ...own, key: 'header' }, name);
  const { order: _order, replayHeaders: _replayHeaders, ...rest } = plan;
  return {
    ...rest,
    key,
    scope: own.scope,
    fingerprint: own.fingerprint ?? (defaults.fingerprint === false ? false : true),
  };
}
