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
      const code = (error as { code?: string }).code;
      if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw error;
      throw new IdempotencyConfigurationError(`${usedBy} needs the package ${name}: npm install ${name}`, { cause: error });
    });
    loaded.set(name, module);
  }
  return module as Promise<T>;
}
