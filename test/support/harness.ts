import { type INestApplication, type LoggerService, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import { getDataSourceToken, TypeOrmModule } from '@nestjs/typeorm';
import type { DataSource } from 'typeorm';
import { IdempotencyModule, type IdempotencyModuleOptions, IdempotencyService, idempotencyMigrations } from 'nestjs-idempotency';
import { DATABASE_URL, sql } from './database';
import { ClassLevelController, Effect, EffectsController } from './effects.controller';

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
  schema: string;
  /** Another way to the same database (a proxy); the effects are still counted directly. */
  databaseUrl?: string;
  idempotency?: IdempotencyModuleOptions;
  poolSize?: number;
  /** Options of each connection, as libpq takes them (`-c name=value`). */
  connectionOptions?: string;
  controllers?: Array<new (...args: never[]) => unknown>;
  /** Entities besides the effects table. */
  entities?: Array<new () => unknown>;
  /** Where the app logs; default nowhere. */
  logger?: LoggerService;
}

/** A real Nest app on a real port, with its own pool, on the test file's schema. */
export async function startApp(platform: Platform, options: TestAppOptions): Promise<TestApp> {
  @Module({
    imports: [
      TypeOrmModule.forRoot({
        type: 'postgres',
        url: options.databaseUrl ?? DATABASE_URL,
        schema: options.schema,
        entities: [Effect, ...(options.entities ?? [])],
        synchronize: true,
        migrations: [...idempotencyMigrations],
        migrationsRun: true,
        extra: { max: options.poolSize ?? 10, options: options.connectionOptions },
      }),
      IdempotencyModule.forRoot({ purgeInterval: 0, ...options.idempotency }),
    ],
    controllers: options.controllers ?? [EffectsController, ClassLevelController],
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
    effects: async (label) => {
      const [row] = await sql<{ count: number }>(`SELECT count(*)::int AS count FROM "${options.schema}".effects WHERE label = $1`, [label]);
      return row.count;
    },
    close: () => app.close(),
  };
}
