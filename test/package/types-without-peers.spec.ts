import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { type FreshApp, freshApp, run } from './packed-library';
import { readRepoFile } from './quick-start-example';

interface Manifest {
  peerDependenciesMeta: Record<string, { optional: boolean }>;
}

/** Every peer the manifest marks optional, of which the consumer below installs none. */
const OPTIONAL_PEERS = Object.keys((JSON.parse(readRepoFile('libs/idempotency/package.json')) as Manifest).peerDependenciesMeta);

const TSCONFIG = JSON.stringify({
  compilerOptions: {
    module: 'nodenext',
    moduleResolution: 'nodenext',
    target: 'ES2023',
    strict: true,
    experimentalDecorators: true,
    emitDecoratorMetadata: true,
    // The point of this app: the library's own .d.ts files are checked too.
    skipLibCheck: false,
    noEmit: true,
    types: ['node'],
  },
  include: ['src'],
});

/** Names from the root entry and the testing entry, used as an app and a store author would. */
const CONSUMER = `import 'reflect-metadata';
import { Controller, Module, Post } from '@nestjs/common';
import * as library from 'nestjs-idempotency';
import {
  type DataSourceLike,
  type EntityManagerLike,
  Idempotent,
  IdempotencyModule,
  type IdempotencyModuleOptions,
  IdempotencyService,
  type IdempotencyStore,
  IdempotentTransaction,
  JobOutbox,
  type RedisClient,
  TypeOrmIdempotencyStore,
  idempotencyEntities,
  idempotencyMigrations,
} from 'nestjs-idempotency';
import * as testing from 'nestjs-idempotency/testing';

const options: IdempotencyModuleOptions = { ttl: '1h', store: { type: 'redis', connection: 'redis://127.0.0.1:6379' }, metrics: true };

@Controller()
export class OrdersController {
  constructor(
    private readonly idempotency: IdempotencyService,
    private readonly outbox: JobOutbox,
  ) {}

  @Post('orders')
  @Idempotent({ transaction: true })
  async create(@IdempotentTransaction() em: EntityManagerLike): Promise<string> {
    await this.outbox.enqueue(em, { queue: 'fulfilment', name: 'fulfil', data: {} });
    return this.idempotency.run('key', async (manager: EntityManagerLike) => String(await manager.query('SELECT 1')), { transaction: true });
  }
}

@Module({ imports: [IdempotencyModule.forRoot(options)], controllers: [OrdersController] })
export class AppModule {}

export function storeOn(dataSource: DataSourceLike): IdempotencyStore {
  return new TypeOrmIdempotencyStore(dataSource);
}

export const client: RedisClient | undefined = undefined;
export const schema = [...idempotencyEntities, ...idempotencyMigrations];
export const entries = [library, testing];
`;

/**
 * The shipped types in an app that has none of the optional peers, with \`skipLibCheck: false\` (so that
 * tsc checks the library's .d.ts files too): no type of an optional peer may appear in them.
 */
describe('the packed types in an app without the optional peers', () => {
  let app: FreshApp | undefined;

  afterAll(() => app?.remove());

  it('compile with skipLibCheck: false', async () => {
    app = await freshApp({
      type: 'commonjs',
      dependencies: ['@nestjs/common', '@nestjs/core', 'reflect-metadata', 'rxjs'],
      devDependencies: ['typescript', '@types/node'],
      files: { 'tsconfig.json': TSCONFIG, 'src/app.ts': CONSUMER },
    });
    expect(OPTIONAL_PEERS.filter((name) => existsSync(join(app!.dir, 'node_modules', name)))).toEqual([]);

    const tsc = await run('npx', ['tsc', '-p', 'tsconfig.json'], app.dir);
    expect({ code: tsc.code, errors: tsc.stdout.trim() }).toEqual({ code: 0, errors: '' });
  }, 300_000);
});
