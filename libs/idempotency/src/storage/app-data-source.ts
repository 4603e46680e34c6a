import type { InjectionToken, OptionalFactoryDependency } from '@nestjs/common';
import { IdempotencyConfigurationError } from '../errors/configuration.errors';
import { requireOptionalPeer } from '../optional-peer';

/** Where the module finds the app's TypeORM DataSource, decided when the module is defined. */
export interface AppDataSource {
  /** What a provider that needs the DataSource injects: @nestjs/typeorm's token, optional; nothing without TypeORM. */
  readonly inject: OptionalFactoryDependency[];
  /** The package that is missing for a DataSource (@nestjs/typeorm or typeorm), when one is. */
  readonly missing?: string;
}

interface NestTypeOrm {
  getDataSourceToken(name?: string): InjectionToken;
}

/**
 * The app's DataSource as the module injects it. The token comes from @nestjs/typeorm (for the default
 * DataSource it is TypeORM's `DataSource` class), so it is loaded here, when `forRoot()` runs, and never when
 * the library is imported. Where it is not installed (records in Redis) nothing is injected, and what needs a
 * DataSource says which package to install (`missingDataSource`). Injecting the token, rather than looking
 * it up later, has Nest create the DataSource first.
 */
export function appDataSource(name: string | undefined): AppDataSource {
  const typeorm = requireOptionalPeer<NestTypeOrm>('@nestjs/typeorm');
  if (!typeorm.module) return { inject: [], missing: typeorm.missing };
  return { inject: [{ token: typeorm.module.getDataSourceToken(name), optional: true }] };
}

/** Why `usedBy` has no DataSource: a package to install, or TypeOrmModule to import. */
export function missingDataSource(usedBy: string, missing: string | undefined, otherwise: string): IdempotencyConfigurationError {
  if (!missing) return new IdempotencyConfigurationError(`${usedBy} works on the app's TypeORM DataSource: ${otherwise}`);
  return new IdempotencyConfigurationError(
    `${usedBy} works on the app's TypeORM DataSource, and the package ${missing} is not installed: ` +
      'npm install typeorm @nestjs/typeorm pg, then import TypeOrmModule.forRoot() beside IdempotencyModule.',
  );
}
