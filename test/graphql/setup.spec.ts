import { Field, Mutation, ObjectType, Query, Resolver } from '@nestjs/graphql';
import { randomUUID } from 'node:crypto';
import { Idempotent, IdempotencyConfigurationError } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema } from '../support/database';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { TcpProxy } from '../support/tcp-proxy';
import { graphql, RECORD } from './graphql-client';
import { graphqlModule, MutationsResolver } from './mutations.resolver';

@ObjectType()
class Done {
  @Field()
  ok!: boolean;
}

@Resolver()
class ShortLeaseResolver {
  @Mutation(() => Done)
  @Idempotent({ lease: '500ms' })
  short(): Done {
    return { ok: true };
  }
}

@Resolver()
class ReplayHeadersResolver {
  @Mutation(() => Done)
  @Idempotent({ replayHeaders: ['etag'] } as never)
  headers(): Done {
    return { ok: true };
  }
}

@Resolver()
class IdempotentQueryResolver {
  @Query(() => Done)
  @Idempotent()
  look(): Done {
    return { ok: true };
  }
}

/** Class-level: its mutations are idempotent, its queries untouched. */
@Resolver()
@Idempotent({ waitTimeout: '0s' })
class ClassLevelResolver {
  @Query(() => Done)
  fine(): Done {
    return { ok: true };
  }

  @Mutation(() => Done)
  change(): Done {
    return { ok: true };
  }
}

/** The error `app.init()` (through `listen()`) rejected with. */
async function startFailure(start: () => Promise<TestApp>): Promise<Error> {
  const failure = await start().then(
    async (app) => {
      await app.close();
      return undefined;
    },
    (error: unknown) => error as Error,
  );
  if (!failure) throw new Error('The app started.');
  expect(failure).toBeInstanceOf(IdempotencyConfigurationError);
  return failure;
}

describe.each(PLATFORMS)('GraphQL mutation options are checked at start, on %s', (platform) => {
  let schema: string;
  const start = (resolvers: Array<new () => unknown>) =>
    startApp(platform, { schema, controllers: [], imports: [graphqlModule()], providers: [MutationsResolver, ...resolvers] });

  beforeAll(async () => {
    schema = await createSchema(`gql_plans_${platform}`);
  });
  afterAll(async () => {
    await dropSchema(schema);
  });

  it('stops the start on a bad option, naming the resolver and the fix', async () => {
    const failure = await startFailure(() => start([ShortLeaseResolver]));
    expect(failure.message).toMatch(/@Idempotent\(\) on ShortLeaseResolver\.short: lease must be at least 1s/);
  });

  it('refuses a key source that can never work where the decorator is applied', () => {
    expect(() => Idempotent({ key: { argument: '' } } as never)).toThrow(/@Idempotent\(\): key \{"argument":""\} is not a key source of a GraphQL mutation/);
  });

  it('names every wrong mutation in one error: an option without meaning here, a query, a class-level one', async () => {
    const failure = await startFailure(() => start([ReplayHeadersResolver, IdempotentQueryResolver, ClassLevelResolver]));
    expect(failure.message).toMatch(/^3 idempotency options are wrong:/);
    expect(failure.message).toMatch(/ReplayHeadersResolver\.headers: replayHeaders has no meaning on a GraphQL mutation/);
    expect(failure.message).toMatch(/IdempotentQueryResolver\.look, a query: only mutations/);
    expect(failure.message).toMatch(/ClassLevelResolver\.change: waitTimeout: "0s" is not a duration/);
    expect(failure.message).not.toMatch(/ClassLevelResolver\.fine/);
  });
});

describe.each(PLATFORMS)('GraphQL mutations without IdempotencyApolloPlugin, on %s', (platform) => {
  let schema: string;
  let t: TestApp;
  const warnings: string[] = [];
  const logger = { log: () => undefined, error: () => undefined, warn: (message: unknown) => void warnings.push(String(message)) };

  beforeAll(async () => {
    schema = await createSchema(`gql_noplugin_${platform}`);
    t = await startApp(platform, { schema, logger, controllers: [], imports: [graphqlModule({ plugin: false })], providers: [MutationsResolver] });
  });
  afterAll(async () => {
    await t?.close();
    await dropSchema(schema);
  });

  it('still replays, unmarked, and says once how to mark replays', async () => {
    const key = randomUUID();
    const first = await graphql(t.url, RECORD, { label: key }, { key });
    const second = await graphql(t.url, RECORD, { label: key }, { key });
    expect(second.data).toEqual(first.data);
    expect(second.extensions).toBeUndefined();
    expect(second.headers.get('idempotent-replayed')).toBeNull();
    expect(await t.effects(key)).toBe(1);
    expect(warnings.filter((warning) => warning.includes('without IdempotencyApolloPlugin'))).toEqual([
      expect.stringMatching(/Add plugins: \[new IdempotencyApolloPlugin\(\)\] to GraphQLModule\.forRoot\(\)/),
    ]);
  });
});

describe.each(PLATFORMS)('a GraphQL mutation with its store unreachable, on %s', (platform) => {
  let schema: string;
  let proxy: TcpProxy;
  let t: TestApp;

  beforeAll(async () => {
    schema = await createSchema(`gql_down_${platform}`);
    const target = new URL(DATABASE_URL);
    proxy = await TcpProxy.open({ host: target.hostname, port: Number(target.port || 5432) });
    const viaProxy = new URL(DATABASE_URL);
    viaProxy.port = String(proxy.port);
    t = await startApp(platform, { schema, databaseUrl: viaProxy.toString(), controllers: [], imports: [graphqlModule()], providers: [MutationsResolver] });
  });
  afterAll(async () => {
    await t?.close();
    await proxy?.stop();
    await dropSchema(schema);
  });

  it('fails the field with IDEMPOTENCY_STORE_UNAVAILABLE and a retry hint, runs nothing, and recovers', async () => {
    const key = randomUUID();
    await proxy.stop();
    const down = await graphql(t.url, RECORD, { label: key }, { key });
    expect(down.errors?.[0]).toMatchObject({ path: ['record'], extensions: { code: 'IDEMPOTENCY_STORE_UNAVAILABLE', status: 503, retryAfter: 1 } });
    expect(down.headers.get('retry-after')).toBe('1');
    expect(await t.effects(key)).toBe(0);
    await proxy.start();
    const recovered = await graphql(t.url, RECORD, { label: key }, { key });
    expect(recovered.data?.record).toBeDefined();
    expect(await t.effects(key)).toBe(1);
  });
});
