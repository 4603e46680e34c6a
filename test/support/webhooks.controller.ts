import { Body, Controller, HttpCode, HttpException, Post } from '@nestjs/common';
import { setTimeout as sleep } from 'node:timers/promises';
import { Column, DataSource, Entity, type EntityManager, PrimaryColumn } from 'typeorm';
import { InjectDataSource } from '@nestjs/typeorm';
import { Idempotent, IdempotencyService, type IdempotentOptions, IdempotentTransaction, VerifyWebhook, type WebhookProvider } from 'nestjs-idempotency';
import { Effect } from './effects.controller';
import { PAYPAL, PAYPAL_CERT_URL } from './paypal-certificate';

/** The secrets the suites sign with: the current one, and the one being rotated out. */
export const SECRETS = {
  current: 'whsec_' + Buffer.from('current-signing-secret-0123456789').toString('base64'),
  previous: 'whsec_' + Buffer.from('previous-signing-secret-98765432').toString('base64'),
};

/** The public URL that Square and Twilio sign, as they would call it. */
export const PUBLIC_URL = 'https://hooks.example.com';

/** The newest state of a resource as ordered events left it. */
@Entity({ name: 'resource_states' })
export class ResourceState {
  @PrimaryColumn({ type: 'text' })
  id!: string;

  @Column({ type: 'text' })
  status!: string;

  @Column({ type: 'bigint' })
  version!: string;
}

interface DeliveryBody {
  /** Sleeps before the effect, in ms. */
  delay?: number;
  /** Answers with this status instead of 200. */
  status?: number;
}

const secrets = [SECRETS.current, SECRETS.previous];

/** A route per provider: verified, idempotent by the provider's preset, one effect row per run. */
@Controller('hooks')
export class WebhooksController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  private async effect(label: string, body: DeliveryBody, manager: EntityManager = this.dataSource.manager): Promise<{ ok: true }> {
    if (body.delay) await sleep(body.delay);
    await manager.insert(Effect, { label });
    if (body.status && body.status !== 200) throw new HttpException({ failed: body.status }, body.status);
    return { ok: true };
  }

  @Post('stripe')
  @HttpCode(200)
  @VerifyWebhook('stripe', { secret: secrets })
  @Idempotent({ key: 'stripe', transaction: true })
  stripe(@Body() body: DeliveryBody & { id: string }, @IdempotentTransaction() manager: EntityManager) {
    return this.effect(`stripe:${body.id}`, body, manager);
  }

  // Its secret comes from IdempotencyModule.forRoot({ webhooks: { github: ... } }).
  @Post('github')
  @HttpCode(200)
  @VerifyWebhook('github')
  @Idempotent({ key: 'github' })
  github(@Body() body: DeliveryBody & { delivery?: string }) {
    return this.effect(`github:${body.delivery}`, body);
  }

  @Post('standard')
  @HttpCode(200)
  @VerifyWebhook('standard-webhooks', { secret: () => secrets })
  @Idempotent({ key: 'standard-webhooks', onInFlight: 'wait' })
  standard(@Body() body: DeliveryBody & { id: string }) {
    return this.effect(`standard:${body.id}`, body);
  }

  /** Stripe-style events about subscriptions, applied in `created` order per subscription. */
  @Post('subscriptions')
  @HttpCode(200)
  @VerifyWebhook('stripe', { secret: secrets })
  @Idempotent({
    key: 'stripe',
    transaction: true,
    order: {
      resource: (req: { body: SubscriptionEvent }) => req.body.data?.object?.id,
      version: (req: { body: SubscriptionEvent }) => req.body.created,
    },
  })
  async subscription(@Body() event: SubscriptionEvent, @IdempotentTransaction() manager: EntityManager) {
    const subscription = event.data.object;
    await manager.upsert(ResourceState, { id: subscription.id, status: subscription.status, version: String(event.created) }, ['id']);
    await this.effect(`subscription:${subscription.id}:${event.created}`, event, manager);
    return { applied: event.created };
  }
}

export interface SubscriptionEvent extends DeliveryBody {
  id: string;
  type: string;
  created: number | string;
  data: { object: { id: string; status: string } };
}

/** The same route shape for each provider verified by hand-written checks. */
function providerController(provider: WebhookProvider, key: IdempotentOptions) {
  @Controller('hooks')
  class ProviderController {
    constructor(@InjectDataSource() readonly dataSource: DataSource) {}

    @Post(provider)
    @HttpCode(200)
    @VerifyWebhook(provider, {
      secret: secrets,
      url: (req: { url: string }) => `${PUBLIC_URL}${req.url}`,
      // PayPal's certificate, as if fetched from PayPal; any other URL fails like an unreachable host.
      certificate: (url) => (url === PAYPAL_CERT_URL ? Promise.resolve(PAYPAL.certificate) : Promise.reject(new Error(`no certificate at ${url}`))),
    })
    @Idempotent(key)
    async handle(@Body() body: DeliveryBody) {
      if (body.delay) await sleep(body.delay);
      await this.dataSource.manager.insert(Effect, { label: provider });
      return { ok: true };
    }
  }
  Object.defineProperty(ProviderController, 'name', { value: `${provider}Controller` });
  return ProviderController;
}

export const HAND_CHECKED_PROVIDERS = ['svix', 'shopify', 'paddle', 'slack', 'square', 'gitlab', 'twilio', 'linear', 'paypal'] as const;
export const providerControllers = HAND_CHECKED_PROVIDERS.map((provider) => providerController(provider, { key: provider }));

export interface BatchItem {
  id: string;
  fail?: boolean;
}

/**
 * A batched delivery (SendGrid, HubSpot): one request, many events. Each item runs once through
 * `IdempotencyService.run`; a failing item fails the request so that the provider retries the batch,
 * and on that retry the items that succeeded replay instead of running again.
 */
@Controller('hooks')
export class BatchController {
  constructor(private readonly idempotency: IdempotencyService) {}

  @Post('batch')
  @HttpCode(200)
  async batch(@Body() items: BatchItem[]) {
    const results = await Promise.allSettled(
      items.map((item) =>
        this.idempotency.run(
          item.id,
          // In the record's transaction: a failing item leaves neither its effect nor its record.
          async (manager: EntityManager) => {
            await manager.insert(Effect, { label: `batch:${item.id}` });
            if (item.fail) throw new Error(`item ${item.id} failed`);
            return { processed: item.id };
          },
          { scope: 'sendgrid-events', transaction: true },
        ),
      ),
    );
    const failed = items.filter((_, index) => results[index].status === 'rejected').map((item) => item.id);
    if (failed.length > 0) throw new HttpException({ failed }, 500);
    return { processed: items.length };
  }
}
