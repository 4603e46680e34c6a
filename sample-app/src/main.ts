import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { chooseDatabase } from './database';
import { StartupError } from './startup-error';
import { defaultedSecrets } from './webhooks/webhook-secrets';
import { redisUrl } from './fulfilment/fulfilment';
import { PaymentProviderClient } from './shop/payment-provider.client';
import { rabbitMqAnswers, SHIPPING_QUEUE, shippingTransport, shownRabbitMqUrl } from './shipping/shipping-transport';

async function bootstrap(logger: Logger): Promise<void> {
  const redis = redisUrl();
  const database = await chooseDatabase(process.env, (message) => logger.warn(message));
  if (database.inMemory) logger.warn(`Database: ${database.description}`);
  else logger.log(`Database: ${database.description}`);
  logger.log(`Queues: BullMQ on Redis at ${redis.shown}; while it does not answer, jobs wait in the outbox table`);
  // Webhook signatures are checked on the body's bytes as sent.
  const app = await NestFactory.create(AppModule.forDatabase(database), { rawBody: true });
  app.enableShutdownHooks();
  const rabbitMq = await rabbitMqAnswers();
  if (rabbitMq.ok) {
    // inheritAppConfig: the app's global pipes, filters and interceptors apply to the consumer too.
    app.connectMicroservice(shippingTransport, { inheritAppConfig: true });
    await app.startAllMicroservices();
    logger.log(`Shipping: order.shipped events from RabbitMQ at ${shownRabbitMqUrl()}, queue ${SHIPPING_QUEUE}`);
  } else {
    logger.warn(`Shipping: RabbitMQ at ${shownRabbitMqUrl()} does not answer (${rabbitMq.reason}); order.shipped events are not consumed, the rest runs`);
  }
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, process.env.HOST ?? '127.0.0.1');
  logger.log(`Shop listening on ${await app.getUrl()}`);
  logger.log(
    `Try: curl -i -X POST ${await app.getUrl()}/orders -H 'Idempotency-Key: order-1' ` +
      `-H 'Content-Type: application/json' -d '{"sku":"widget","quantity":2}'`,
  );
  logger.log(
    `GraphQL: POST ${await app.getUrl()}/graphql, e.g. curl -X POST ${await app.getUrl()}/graphql -H 'Idempotency-Key: order-2' ` +
      `-H 'Content-Type: application/json' -d '{"query":"mutation { placeOrder(sku: \\"widget\\", quantity: 1) { order { id } remainingStock } }"}'`,
  );
  const defaults = defaultedSecrets();
  if (defaults.length > 0) logger.warn(`Webhook secrets for local trials (set them to use your own): ${defaults.join(' ')}`);
  logger.log(`Payments: POST /orders/:id/pay charges at the payment provider of ${app.get(PaymentProviderClient).describe()}`);
  logger.log(`Webhooks: POST /webhooks/stripe, /webhooks/github, /webhooks/standard; signed test deliveries: npm run sample:deliver -- ${await app.getUrl()}`);
}

const logger = new Logger('SampleApp');
bootstrap(logger).catch((error: unknown) => {
  // A setting to fix gets one line that says how; anything else, its stack.
  if (error instanceof StartupError) logger.error(`Cannot start: ${error.message}`);
  else logger.error(`Cannot start: ${(error as Error).message}`, (error as Error).stack);
  process.exitCode = 1;
});
