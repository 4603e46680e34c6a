import { IdempotencyConfigurationError } from './errors/configuration.errors';

const loaded = new Map<string, Promise<unknown>>();

/**
 * Loads an optional peer dependency on first use (ioredis, a provider's own signature library...), so
 * that an app installs only the ones it uses. A missing package fails loudly with the install command.
 */
export function loadOptionalPeer<T>(name: string, usedBy: string): Promise<T> {
  let module = loaded.get(name);
  if (!module) {
    module = import(name).catch((error: unknown) => {
      loaded.delete(name);
      const missing = missingPackage(error, name);
      if (!missing) throw error;
      throw new IdempotencyConfigurationError(`${usedBy} needs the package ${missing}: npm install ${missing}`, { cause: error });
    });
    loaded.set(name, module);
  }
  return module as Promise<T>;
}

/** An optional peer loaded at once, or the package that is missing for it (itself, or one it needs). */
export type RequiredPeer<T> = { module: T; missing?: undefined } | { module?: undefined; missing: string };

/**
 * Loads an optional peer synchronously, for what must be known when a Nest module is defined (an injection
 * token). A package that is not installed is no error here: the caller says what needs it, when it does.
 */
export function requireOptionalPeer<T>(name: string): RequiredPeer<T> {
  try {
    // require() and not import(): a module's providers are listed synchronously. The package is CommonJS.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return { module: require(name) as T };
  } catch (error) {
    const missing = missingPackage(error, name);
    if (!missing) throw error;
    return { missing };
  }
}

/** The package whose absence `error` reports (`name` itself, or a package it needs), or `undefined` for another error. */
function missingPackage(error: unknown, name: string): string | undefined {
  const { code, message } = error as { code?: string; message?: string };
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return undefined;
  // "Cannot find module 'x'" (require) or "Cannot find package 'x' imported from ..." (import).
  const specifier = /Cannot find (?:module|package) '([^']+)'/.exec(message ?? '')?.[1];
  // A file of the package missing (a broken install) names a path: installing the package again is the fix.
  if (!specifier || specifier.startsWith('.') || specifier.startsWith('/')) return name;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}
