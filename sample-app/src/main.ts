import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';
import { chooseDatabase } from './database';

async function bootstrap(): Promise<void> {
  const logger = new Logger('SampleApp');
  const database = await chooseDatabase();
  logger.log(`Database: ${database.description}`);
  const app = await NestFactory.create(AppModule.forDatabase(database));
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, process.env.HOST ?? '127.0.0.1');
  logger.log(`Shop listening on ${await app.getUrl()}`);
  logger.log(
    `Try: curl -i -X POST ${await app.getUrl()}/orders -H 'Idempotency-Key: order-1' ` +
      `-H 'Content-Type: application/json' -d '{"sku":"widget","quantity":2}'`,
  );
}

void bootstrap();
