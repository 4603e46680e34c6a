import { Module } from '@nestjs/common';
import { ProviderController } from './provider.controller';

/** The local payment provider that the shop charges: its own route, protected by `@Idempotent()`, and its own table. */
@Module({ controllers: [ProviderController] })
export class PaymentProviderModule {}
