import { BadRequestException, type DynamicModule } from '@nestjs/common';
import { ApolloDriver, type ApolloDriverConfig } from '@nestjs/apollo';
import { Args, Field, GraphQLISODateTime, GraphQLModule, Int, Mutation, ObjectType, Query, Resolver } from '@nestjs/graphql';
import { InjectDataSource } from '@nestjs/typeorm';
import { GraphQLError } from 'graphql';
import { randomUUID } from 'node:crypto';
import type { DataSource, EntityManager } from 'typeorm';
import {
  type ClaimIdentity,
  type GraphQLMutationCall,
  Idempotent,
  IdempotencyApolloPlugin,
  IdempotencyContext,
  IdempotencyKey,
  IdempotentTransaction,
} from 'nestjs-idempotency';
import { Effect } from '../support/effects.controller';

@ObjectType()
export class Recorded {
  @Field()
  label!: string;

  /** New on every run: a replay that carries the first run's proves the resolver did not run again. */
  @Field()
  runId!: string;

  @Field(() => GraphQLISODateTime)
  at!: Date;

  @Field(() => Int)
  quantity!: number;

  @Field(() => [String])
  tags!: string[];
}

/** The first resolver of a label held until the test lets it go: a duplicate arrives while the first is surely in flight. */
const gates = new Map<string, { entered: () => void; release: Promise<void> }>();

/** Holds the next resolver of `label` until `release()`; `entered` settles once it is inside. Later ones are not held. */
export function holdResolvers(label: string): { entered: Promise<void>; release: () => void } {
  let release!: () => void;
  let entered!: () => void;
  const inside = new Promise<void>((resolve) => (entered = resolve));
  gates.set(label, { entered, release: new Promise<void>((resolve) => (release = resolve)) });
  return { entered: inside, release };
}

async function effect(manager: EntityManager, label: string): Promise<void> {
  await manager.insert(Effect, { label });
}

function recorded(label: string, quantity: number): Recorded {
  return { label, runId: randomUUID(), at: new Date(), quantity, tags: ['a', label.slice(0, 4)] };
}

type FailKind = 'bad-request' | 'user-input' | 'conflict' | 'crash';

@Resolver(() => Recorded)
export class MutationsResolver {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Query(() => Int)
  effects(@Args('label') label: string): Promise<number> {
    return this.dataSource.manager.count(Effect, { where: { label } });
  }

  /** Key from the Idempotency-Key header (the default). */
  @Mutation(() => Recorded)
  @Idempotent()
  async record(@Args('label') label: string, @Args('quantity', { type: () => Int, defaultValue: 1 }) quantity: number): Promise<Recorded> {
    const gate = gates.get(label);
    if (gate) {
      gates.delete(label);
      gate.entered();
      await gate.release;
    }
    await effect(this.dataSource.manager, label);
    return recorded(label, quantity);
  }

  /** Key from an argument of the mutation. */
  @Mutation(() => Recorded)
  @Idempotent({ key: { argument: 'idempotencyKey' } })
  async recordByArgument(@Args('idempotencyKey') _key: string, @Args('label') label: string): Promise<Recorded> {
    await effect(this.dataSource.manager, label);
    return recorded(label, 1);
  }

  /** Key from a function of the call, scoped by a tenant read from the GraphQL context's request. */
  @Mutation(() => Recorded)
  @Idempotent({
    key: (call: GraphQLMutationCall<{ label: string }>) => `fn-${call.args.label}`,
    scope: (call: GraphQLMutationCall) => call.request?.headers['x-tenant'] as string | undefined,
    required: false,
  })
  async recordByFunction(@Args('label') label: string): Promise<Recorded> {
    await effect(this.dataSource.manager, label);
    return recorded(label, 1);
  }

  /** An optional key: without one the resolver runs without idempotency. */
  @Mutation(() => Recorded)
  @Idempotent({ key: { argument: 'idempotencyKey' }, required: false })
  async recordOptionally(@Args('label') label: string, @Args('idempotencyKey', { type: () => String, nullable: true }) _key: string | null): Promise<Recorded> {
    await effect(this.dataSource.manager, label);
    return recorded(label, 1);
  }

  /** Runs its effect, then fails as told. */
  @Mutation(() => Recorded)
  @Idempotent()
  async fail(@Args('label') label: string, @Args('kind') kind: string): Promise<Recorded> {
    await effect(this.dataSource.manager, label);
    switch (kind as FailKind) {
      case 'bad-request':
        throw new BadRequestException(`No stock for ${label}`);
      case 'user-input':
        throw new GraphQLError(`Invalid label ${label}`, { extensions: { code: 'BAD_USER_INPUT', field: 'label' } });
      case 'conflict':
        throw new GraphQLError('Busy', { extensions: { code: 'CONFLICT', http: { status: 409 } } });
      default:
        throw new Error('the database fell over');
    }
  }

  /** Transaction mode: the effect commits with the stored result, or not at all. */
  @Mutation(() => Recorded)
  @Idempotent({ transaction: true })
  async recordInTransaction(
    @Args('label') label: string,
    @Args('fail', { defaultValue: false }) fail: boolean,
    @Args('reject', { defaultValue: false }) reject: boolean,
    @IdempotentTransaction() em: EntityManager,
  ): Promise<Recorded> {
    await effect(em, label);
    if (fail) throw new Error('failed after its write');
    if (reject) throw new BadRequestException(`Rejected ${label} after its write`);
    return recorded(label, 1);
  }

  /** The downstream key of its claim, by the parameter decorator and by the static context after a timer: the same. */
  @Mutation(() => [String])
  @Idempotent()
  async derived(@Args('label') label: string, @IdempotencyKey() claim: ClaimIdentity | undefined): Promise<string[]> {
    await effect(this.dataSource.manager, label);
    await new Promise((resolve) => setTimeout(resolve, 1));
    return [claim?.derive('charge') ?? 'no claim', IdempotencyContext.derive('charge'), randomUUID()];
  }
}

/** GraphQL over Apollo, on whichever platform the app runs (Express or Fastify), with the replay-marking plugin unless told. */
export function graphqlModule(options: { plugin?: boolean } = {}): DynamicModule {
  return GraphQLModule.forRoot<ApolloDriverConfig>({
    driver: ApolloDriver,
    autoSchemaFile: true,
    graphiql: false,
    plugins: options.plugin === false ? [] : [new IdempotencyApolloPlugin()],
  });
}
