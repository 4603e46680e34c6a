import { Args, Field, GraphQLISODateTime, Int, Mutation, ObjectType, Query, Resolver } from '@nestjs/graphql';
import { InjectDataSource } from '@nestjs/typeorm';
import { Idempotent, IdempotentTransaction } from 'nestjs-idempotency';
import type { DataSource, EntityManager } from 'typeorm';
import { Order } from './order.entity';
import { placeOrder } from './place-order';

@ObjectType('Order')
class OrderType {
  @Field(() => Int)
  id!: number;

  @Field()
  sku!: string;

  @Field(() => Int)
  quantity!: number;

  @Field()
  paid!: boolean;

  @Field(() => GraphQLISODateTime)
  createdAt!: Date;
}

@ObjectType()
class PlacedOrder {
  @Field(() => OrderType)
  order!: OrderType;

  @Field(() => Int)
  remainingStock!: number;
}

/** The shop over GraphQL, at POST /graphql, beside the REST routes. */
@Resolver()
export class OrdersResolver {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Query(() => [OrderType])
  orders(): Promise<Order[]> {
    return this.dataSource.getRepository(Order).find({ order: { id: 'ASC' } });
  }

  /**
   * Places an order once per Idempotency-Key header, as POST /orders does: a retry gets the stored result, marked
   * in `extensions.idempotency`; an unknown sku or too little stock is a stored answer too (404 and 422 over REST).
   */
  @Mutation(() => PlacedOrder)
  @Idempotent({ transaction: true })
  placeOrder(
    @Args('sku') sku: string,
    @Args('quantity', { type: () => Int }) quantity: number,
    @IdempotentTransaction() em: EntityManager,
  ): Promise<PlacedOrder> {
    return placeOrder(em, { sku, quantity });
  }
}
