import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { chooseDatabase } from './database';
import { defaultedSecrets } from './webhooks/webhook-secrets';
import { REDIS_URL } from './fulfilment/fulfilment';

async function bootstrap(): Promise<void> {
  const logger = new Logger('SampleApp');
  const database = await chooseDatabase();
  logger.log(`Database: ${database.description}`);
  logger.log(`Queues: BullMQ on Redis at ${REDIS_URL} (REDIS_URL)`);
  // Webhook signatures are checked on the body's bytes as sent.
  const app = await NestFactory.create(AppModule.forDatabase(database), { rawBody: true });
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, process.env.HOST ?? '127.0.0.1');
  logger.log(`Shop listening on ${await app.getUrl()}`);
  logger.log(
    `Try: curl -i -X POST ${await app.getUrl()}/orders -H 'Idempotency-Key: order-1' ` +
      `-H 'Content-Type: application/json' -d '{"sku":"widget","quantity":2}'`,
  );
  const defaults = defaultedSecrets();
  if (defaults.length > 0) logger.warn(`Webhook secrets for local trials (set them to use your own): ${defaults.join(' ')}`);
  logger.log(`Webhooks: POST /webhooks/stripe, /webhooks/github, /webhooks/standard; signed test deliveries: npm run sample:deliver -- ${await app.getUrl()}`);
}

void bootstrap();
