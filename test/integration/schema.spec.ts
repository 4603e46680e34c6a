import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { TypeOrmModule } from '@nestjs/typeorm';
import { DataSource } from 'typeorm';
import { IdempotencyConfigurationError, IdempotencyModule, idempotencyEntities, idempotencyMigrations } from 'nestjs-idempotency';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';

/** The library's tables: records, resource versions and the outbox. */
const TABLES = ['idempotency_records', 'idempotency_versions', 'idempotency_outbox'];

const columns = (schema: string) =>
  sql<{ table_name: string }>(
    // A serial column's default names its sequence with the schema, which differs between the two.
    `SELECT table_name, column_name, data_type, is_nullable, replace(column_default, $1 || '.', '') AS column_default FROM information_schema.columns
     WHERE table_schema = $1 AND table_name = ANY($2) ORDER BY table_name, column_name`,
    [schema, TABLES],
  );
const indexes = (schema: string) =>
  sql<{ indexdef: string }>(
    `SELECT regexp_replace(indexdef, 'ON \\S+ ', 'ON t ') AS indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = ANY($2) ORDER BY indexname`,
    [schema, TABLES],
  );

describe("the library's tables", () => {
  const schemas: string[] = [];
  afterAll(() => Promise.all(schemas.map(dropSchema)));

  it('is the same whether the migration or synchronize: true creates it', async () => {
    const migrated = await createSchema('migrated');
    const synchronized = await createSchema('synchronized');
    schemas.push(migrated, synchronized);
    for (const options of [
      { schema: migrated, migrations: idempotencyMigrations, migrationsRun: true },
      { schema: synchronized, entities: idempotencyEntities, synchronize: true },
    ]) {
      const dataSource = new DataSource({ type: 'postgres', url: DATABASE_URL, ...options });
      await dataSource.initialize();
      await dataSource.destroy();
    }
    expect(await columns(synchronized)).toEqual(await columns(migrated));
    expect(await indexes(synchronized)).toEqual(await indexes(migrated));
    const migratedColumns = await columns(migrated);
    expect(TABLES.map((table) => migratedColumns.filter((column) => column.table_name === table).length)).toEqual([13, 4, 12]);
  });

  it('refuses to start, saying how to fix it, when the table is missing', async () => {
    const empty = await createSchema('empty');
    schemas.push(empty);
    @Module({
      imports: [TypeOrmModule.forRoot({ type: 'postgres', url: DATABASE_URL, schema: empty }), IdempotencyModule.forRoot({ purgeInterval: 0 })],
    })
    class MissingTableModule {}
    const app = await NestFactory.create(MissingTableModule, { logger: false });
    await expect(app.init()).rejects.toThrow(IdempotencyConfigurationError);
    await expect(app.init()).rejects.toThrow(/idempotencyMigrations/);
    await app.close();
  });
});
