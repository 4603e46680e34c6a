import { Inject, Injectable } from '@nestjs/common';
import type { DiscoveryService } from '@nestjs/core';

type ClaimContextModule = typeof import('./claim-context');
type Loaded = {
  context: ClaimContextModule;
  Switch: typeof import('./claim-context-switch').ClaimContextSwitch;
  Context: typeof import('../idempotency-context').IdempotencyContext;
};

/** The library's modules afresh, as a process that has not carried claims yet sees them. */
function load(): Loaded {
  let loaded: Loaded | undefined;
  jest.isolateModules(() => {
    /* eslint-disable @typescript-eslint/no-require-imports -- a fresh copy of the module state, per test */
    loaded = {
      context: require('./claim-context') as ClaimContextModule,
      Switch: (require('./claim-context-switch') as typeof import('./claim-context-switch')).ClaimContextSwitch,
      Context: (require('../idempotency-context') as typeof import('../idempotency-context')).IdempotencyContext,
    };
    /* eslint-enable @typescript-eslint/no-require-imports */
  });
  return loaded!;
}

const discovery = (providers: unknown[], controllers: unknown[] = []) =>
  ({
    getProviders: () => providers.map((metatype) => ({ metatype })),
    getControllers: () => controllers.map((metatype) => ({ metatype })),
  }) as unknown as DiscoveryService;

/** What a handler run by the library sees of its claim. */
function seenBy({ context, Context }: Loaded): Promise<string | undefined> {
  return context.runWithClaim({ scope: 's', key: 'k', attempt: 1 }, async () => {
    await Promise.resolve();
    return Context.current()?.key;
  });
}

describe('carrying the claim only where the app reads it', () => {
  it('does not carry it where nothing reads it, and a static read then says how to turn it on', async () => {
    const loaded = load();
    new loaded.Switch(discovery([class Orders {}]), {});
    await expect(seenBy(loaded)).rejects.toThrow(/does not carry it.*claimContext: 'always'/);
    expect(() => loaded.Context.derive('charge')).toThrow(/claimContext: 'always'/);
  });

  it("carries it with claimContext: 'always'", async () => {
    const loaded = load();
    new loaded.Switch(discovery([]), { claimContext: 'always' });
    await expect(seenBy(loaded)).resolves.toBe('k');
  });

  it('carries it where a provider or controller injects IdempotencyContext: by type, by @Inject(), as a property or in a factory', async () => {
    const injections: Array<(Context: Loaded['Context']) => unknown[]> = [
      (Context) => {
        @Injectable()
        class ByType {
          constructor(readonly idempotency: InstanceType<typeof Context>) {}
        }
        Reflect.defineMetadata('design:paramtypes', [Context], ByType);
        return [ByType];
      },
      (Context) => {
        @Injectable()
        class ByToken {
          constructor(@Inject(Context) readonly idempotency: unknown) {}
        }
        return [ByToken];
      },
      (Context) => {
        @Injectable()
        class ByProperty {
          @Inject(Context) readonly idempotency!: unknown;
        }
        return [ByProperty];
      },
    ];
    for (const inject of injections) {
      const loaded = load();
      new loaded.Switch(discovery(inject(loaded.Context)), {});
      await expect(seenBy(loaded)).resolves.toBe('k');
    }
    const loaded = load();
    const factory = { getProviders: () => [{ metatype: () => undefined, inject: [loaded.Context] }], getControllers: () => [] } as unknown as DiscoveryService;
    new loaded.Switch(factory, {});
    await expect(seenBy(loaded)).resolves.toBe('k');
  });

  it('carries it once @IdempotencyKey() is applied, as the class is defined', async () => {
    let loaded: Loaded | undefined;
    let IdempotencyKey: (() => ParameterDecorator) | undefined;
    jest.isolateModules(() => {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- the decorator and the claim context from one fresh registry
      ({ IdempotencyKey } = require('../idempotency-key.decorator') as typeof import('../idempotency-key.decorator'));
      loaded = {
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- as above
        context: require('./claim-context') as ClaimContextModule,
        Switch: class {} as unknown as Loaded['Switch'],
        // eslint-disable-next-line @typescript-eslint/no-require-imports -- as above
        Context: (require('../idempotency-context') as typeof import('../idempotency-context')).IdempotencyContext,
      };
    });
    await expect(seenBy(loaded!)).rejects.toThrow(/does not carry it/);
    class Orders {
      place(claim: unknown) {
        return claim;
      }
    }
    IdempotencyKey!()(Orders.prototype, 'place', 0);
    await expect(seenBy(loaded!)).resolves.toBe('k');
  });

  it('always carries an explicit runInClaimContext(), carried or not', async () => {
    const { context } = load();
    await expect(context.runInClaimContext({ scope: 's', key: 'k', attempt: 1 }, () => Promise.resolve(context.currentClaim()?.key))).resolves.toBe('k');
  });
});
