import { BadRequestException, Body, Controller, Get, type PipeTransform, Post } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { Idempotent, IdempotentTransaction } from 'nestjs-idempotency';
import type { DataSource, EntityManager } from 'typeorm';
import { ProviderCharge } from './provider-charge.entity';

export interface CreateCharge {
  /** In cents. */
  amount: number;
  reference: string;
}

/** A charge as the provider answers it, Stripe-like. */
export interface ChargeAnswer {
  id: string;
  amount: number;
  reference: string;
}

class ParseCreateCharge implements PipeTransform<unknown, CreateCharge> {
  transform(body: unknown): CreateCharge {
    const { amount, reference } = (body ?? {}) as Partial<CreateCharge>;
    if (!Number.isInteger(amount) || (amount as number) < 1 || typeof reference !== 'string' || reference === '') {
      throw new BadRequestException('Send { "amount": positive integer (cents), "reference": string }.');
    }
    return { amount: amount as number, reference };
  }
}

/**
 * A stand-in for a payment API such as Stripe's, served by the sample itself (or by another instance of it, at
 * PAYMENT_PROVIDER_URL): like Stripe, it charges once per `Idempotency-Key` and answers a repeat with the first answer.
 */
@Controller('provider/charges')
export class ProviderController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  @Post()
  @Idempotent({ transaction: true })
  async create(@Body(ParseCreateCharge) charge: CreateCharge, @IdempotentTransaction() em: EntityManager): Promise<ChargeAnswer> {
    const saved = await em.save(em.create(ProviderCharge, charge));
    return { id: `ch_${saved.id}`, amount: saved.amount, reference: saved.reference };
  }

  @Get()
  list() {
    return this.dataSource.getRepository(ProviderCharge).find({ order: { id: 'ASC' } });
  }
}
