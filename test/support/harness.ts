import { type DynamicModule, type INestApplication, type LoggerService, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { IdempotencyModule, type IdempotencyModuleOptions, IdempotencyService } from 'nestjs-idempotency';
import { ClassLevelController, Effect, EffectsController } from './effects.controller';
import { countEffects, type Engine, typeOrmOptions } from './engines';

export type Platform = 'express' | 'fastify';
export const PLATFORMS: Platform[] = ['express', 'fastify'];

export interface TestApp {
  app: INestApplication;
  url: string;
  dataSource: DataSource;
  service: IdempotencyService;
  /** How many times handlers ran for `label`. */
  effects(label: string): Promise<number>;
  close(): Promise<void>;
}

export interface TestAppOptions {
  /** The test file's schema (PostgreSQL) or database (MariaDB). */
  schema: string;
  /** Default PostgreSQL. */
  engine?: Engine;
  /** Another way to the same database (a proxy); the effects are still counted directly. */
  databaseUrl?: string;
  idempotency?: IdempotencyModuleOptions;
  poolSize?: number;
  /** Options of each PostgreSQL connection, as libpq takes them (`-c name=value`). */
  connectionOptions?: string;
  controllers?: Array<new (...args: never[]) => unknown>;
  /** Modules (GraphQLModule) and providers (resolvers) besides the controllers. */
  imports?: Array<DynamicModule | (new (...args: never[]) => unknown)>;
  providers?: Array<new (...args: never[]) => unknown>;
  /** Entities besides the effects table. */
  entities?: Array<new () => unknown>;
  /** Where the app logs; default nowhere. */
  logger?: LoggerService;
}

/** A real Nest app on a real port, with its own pool, on the test file's schema (or MariaDB database). */
export async function startApp(platform: Platform, options: TestAppOptions): Promise<TestApp> {
  const engine = options.engine ?? 'postgres';
  const connection = { poolSize: options.poolSize, url: options.databaseUrl, connectionOptions: options.connectionOptions };
  @Module({
    imports: [
      TypeOrmModule.forRoot({
        ...typeOrmOptions(engine, options.schema, connection),
        entities: [Effect, ...(options.entities ?? [])],
        synchronize: true,
      }),
      IdempotencyModule.forRoot({ purgeInterval: 0, ...options.idempotency }),
      ...(options.imports ?? []),
    ],
    controllers: options.controllers ?? [EffectsController, ClassLevelController],
    providers: options.providers ?? [],
  })
  class TestAppModule {}

  const app =
    platform === 'express'
      ? await NestFactory.create(TestAppModule, { logger: options.logger ?? false, rawBody: true })
      : await NestFactory.create(TestAppModule, new FastifyAdapter(), { logger: options.logger ?? false, rawBody: true });
  try {
    await app.listen(0, '127.0.0.1');
  } catch (error) {
    // A start refused by a lifecycle hook still opened the pool and the store's connections.
    await app.close();
    throw error;
  }
  const dataSource = app.get<DataSource>(getDataSourceToken());
  return {
    app,
    url: (await app.getUrl()).replace('[::1]', '127.0.0.1'),
    dataSource,
    service: app.get(IdempotencyService),
    effects: (label) => countEffects(engine, options.schema, label),
    close: () => app.close(),
  };
}
