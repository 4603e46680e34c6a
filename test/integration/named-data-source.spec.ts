import { Controller, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import type { INestApplication } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { Idempotent, IdempotencyModule, idempotencyMigrations } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';
import { send } from '../support/http';

/** `dataSource` names a DataSource other than the default one; the records go there. */
describe('a named DataSource', () => {
  let main: string;
  let other: string;
  let app: INestApplication;

  beforeAll(async () => {
    main = await createSchema('main_ds');
    other = await createSchema('other_ds');
    @Controller()
    class PingController {
      @Post('ping')
      @Idempotent()
      ping() {
        return { pong: true };
      }
    }
    @Module({
      imports: [
        TypeOrmModule.forRoot({ type: 'postgres', url: DATABASE_URL, schema: main }),
        TypeOrmModule.forRoot({
          name: 'records',
          type: 'postgres',
          url: DATABASE_URL,
          schema: other,
          migrations: [...idempotencyMigrations],
          migrationsRun: true,
        }),
        IdempotencyModule.forRootAsync({ dataSource: 'records', useFactory: () => ({ purgeInterval: 0 }) }),
      ],
      controllers: [PingController],
    })
    class NamedModule {}
    app = await NestFactory.create(NamedModule, { logger: false });
    await app.listen(0, '127.0.0.1');
  });
  afterAll(async () => {
    await app?.close();
    await dropSchema(main);
    await dropSchema(other);
  });

  it('stores the records through the named DataSource', async () => {
    const key = randomUUID();
    const url = await app.getUrl();
    await send(url, '/ping', { key });
    expect((await send(url, '/ping', { key })).headers.get('idempotent-replayed')).toBe('true');
    expect(await sql(`SELECT key FROM "${other}".idempotency_records`)).toEqual([{ key }]);
  });
});
