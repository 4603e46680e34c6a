import type { ScopeFunction } from '../route-functions';
import { assertRecordText, textOf } from './key-text';
import type { ProviderPresetName } from './provider-presets';
import { type Awaitable, callRequestFunction, isPromiseLike, type RequestFunctionBound } from './request-function';

const SCOPE = 'idempotency scope';

/**
 * What the route's `scope` function adds (a tenant, a principal), or `undefined`: a string, a number, or
 * nothing. Awaited within the bound when the function returns a promise.
 */
export function readTenant<TRequest>(
  scope: ScopeFunction<TRequest> | undefined,
  request: TRequest,
  bound: RequestFunctionBound,
): Awaitable<string | undefined> {
  if (!scope) return undefined;
  const value = callRequestFunction(scope, request, SCOPE, bound);
  return isPromiseLike(value) ? Promise.resolve(value).then((settled) => textOf(settled, SCOPE)) : textOf(value, SCOPE);
}

/**
 * The scope of a record: `[provider:]METHOD /route/pattern[#tenant]`. A provider's event ids never meet
 * another provider's, nor a tenant's keys another tenant's. Checked like a key (no control characters,
 * well-formed Unicode): otherwise two tenants could share a record once encoded, or the store refuse it.
 */
export function buildScope(route: string, provider: ProviderPresetName | undefined, tenant: string | undefined): string {
  const base = provider ? `${provider}:${route}` : route;
  return assertRecordText(tenant === undefined ? base : `${base}#${tenant}`, SCOPE);
}
