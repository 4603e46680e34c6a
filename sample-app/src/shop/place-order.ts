import { NotFoundException, UnprocessableEntityException } from '@nestjs/common';
import type { EntityManager } from 'typeorm';
import { Order } from './order.entity';
import { Product } from './product.entity';

export interface PlaceOrder {
  sku: string;
  quantity: number;
}

export interface PlacedOrder {
  order: Order;
  remainingStock: number;
}

/**
 * Decrements the stock and writes the order, through the claim's transaction: both commit with the stored answer
 * or not at all. The REST route and the GraphQL mutation place orders alike.
 */
export async function placeOrder(em: EntityManager, order: PlaceOrder): Promise<PlacedOrder> {
  const product = await em.findOne(Product, { where: { sku: order.sku }, lock: { mode: 'pessimistic_write' } });
  if (!product) throw new NotFoundException(`No product with sku "${order.sku}".`);
  if (product.stock < order.quantity) {
    throw new UnprocessableEntityException(`Only ${product.stock} of "${order.sku}" left.`);
  }
  product.stock -= order.quantity;
  await em.save(product);
  const saved = await em.save(em.create(Order, { sku: order.sku, quantity: order.quantity }));
  return { order: saved, remainingStock: product.stock };
}
