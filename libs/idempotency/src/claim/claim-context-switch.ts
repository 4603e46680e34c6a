import { Inject, Injectable } from '@nestjs/common';
import { PARAMTYPES_METADATA, PROPERTY_DEPS_METADATA, SELF_DECLARED_DEPS_METADATA } from '@nestjs/common/constants';
import { DiscoveryService } from '@nestjs/core';
import { IdempotencyContext } from '../idempotency-context';
import { IDEMPOTENCY_MODULE_OPTIONS } from '../idempotency.module-definition';
import type { IdempotencyModuleOptions } from '../idempotency.options';
import { carryClaimContext } from './claim-context';

/**
 * Turns the claim context on where the app can read it: `claimContext: 'always'`, or a provider or controller that
 * injects `IdempotencyContext` (by constructor, property or factory). `@IdempotencyKey()` turns it on itself.
 * Decided as the module is built, before any request, message or `run()`.
 */
@Injectable()
export class ClaimContextSwitch {
  constructor(discovery: DiscoveryService, @Inject(IDEMPOTENCY_MODULE_OPTIONS) options: IdempotencyModuleOptions) {
    const wrappers = [...discovery.getProviders(), ...discovery.getControllers()];
    if (options.claimContext === 'always' || wrappers.some((wrapper) => injectsContext(wrapper))) carryClaimContext();
  }
}

interface Wrapper {
  metatype?: unknown;
  inject?: unknown[] | null;
}

function injectsContext({ metatype, inject }: Wrapper): boolean {
  if (inject?.some((token) => token === IdempotencyContext || (token as { token?: unknown } | null)?.token === IdempotencyContext)) return true;
  if (typeof metatype !== 'function' || metatype === IdempotencyContext) return false;
  const byType = (Reflect.getMetadata(PARAMTYPES_METADATA, metatype) ?? []) as unknown[];
  const declared = (Reflect.getMetadata(SELF_DECLARED_DEPS_METADATA, metatype) ?? []) as Array<{ param: unknown }>;
  const properties = (Reflect.getMetadata(PROPERTY_DEPS_METADATA, metatype) ?? []) as Array<{ type: unknown }>;
  return (
    byType.includes(IdempotencyContext) ||
    declared.some(({ param }) => param === IdempotencyContext) ||
    properties.some(({ type }) => type === IdempotencyContext)
  );
}
