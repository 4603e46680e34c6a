import { DataSource, type DataSourceOptions, EntitySchema, type EntitySchemaColumnOptions } from 'typeorm';
import { CreatePartitionedIdempotencyRecords1763900000010, idempotencyEntities, idempotencyMigrations } from 'nestjs-idempotency';
import { IdempotencyRecord } from '../../libs/idempotency/src/storage/idempotency-record.entity';
import { IDEMPOTENCY_TABLE } from '../../libs/idempotency/src/storage/table-name';
import { IDEMPOTENCY_PARTITIONED_TABLE } from '../../libs/idempotency/src/storage/postgres/partitioning.options';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';

type Mapping = Pick<DataSourceOptions, 'entities' | 'migrations'>;

/**
 * What TypeORM's schema builder (the engine of `synchronize` and `migration:generate`) would still change in a schema
 * built by the migrations alone, for the given entities: a user's generated migration would hold exactly these.
 */
async function pendingStatements(schema: string, { entities, migrations }: Mapping, before?: () => Promise<unknown>): Promise<string[]> {
  const dataSource = new DataSource({ type: 'postgres', url: DATABASE_URL, schema, migrations, migrationsRun: true });
  await dataSource.initialize();
  await dataSource.destroy();
  await before?.();
  const checked = new DataSource({ type: 'postgres', url: DATABASE_URL, schema, entities });
  await checked.initialize();
  try {
    const log = await checked.driver.createSchemaBuilder().log();
    return log.upQueries.map((query) => query.query);
  } finally {
    await checked.destroy();
  }
}

/**
 * The entity the partitioned migration corresponds to: the columns of `IdempotencyRecord`, read from its own metadata, with
 * the partition key `created_at` in the primary key and the constraints and index named after the partitioned table.
 */
async function partitionedRecordsEntity(): Promise<EntitySchema> {
  const reader = new DataSource({ type: 'postgres', url: DATABASE_URL, entities: [IdempotencyRecord] });
  await reader.initialize();
  const records = reader.getMetadata(IdempotencyRecord);
  await reader.destroy();
  const renamed = (name: string | undefined) => (name ?? '').replace(IDEMPOTENCY_TABLE, IDEMPOTENCY_PARTITIONED_TABLE);
  const columns: Record<string, EntitySchemaColumnOptions> = {};
  for (const column of records.columns) {
    const primary = column.isPrimary || column.databaseName === 'created_at';
    columns[column.propertyName] = {
      name: column.databaseName,
      type: column.type,
      nullable: column.isNullable,
      default: column.default as unknown,
      primary,
      ...(primary ? { primaryKeyConstraintName: `PK_${IDEMPOTENCY_PARTITIONED_TABLE}` } : {}),
    };
  }
  return new EntitySchema({
    name: 'PartitionedIdempotencyRecord',
    tableName: IDEMPOTENCY_PARTITIONED_TABLE,
    columns,
    indices: records.indices.map((index) => ({ name: renamed(index.name), columns: index.columns.map((column) => column.propertyName) })),
    checks: records.checks.map((check) => ({ name: renamed(check.name), expression: check.expression })),
  });
}

/**
 * The migrations and the entities describe the same tables: otherwise every `synchronize` start and every
 * `typeorm migration:generate` of a user's app would want to change the library's tables. On failure, the
 * statements TypeORM would run are printed.
 */
describe('the entities and the migrations', () => {
  const schemas: string[] = [];
  afterAll(() => Promise.all(schemas.map(dropSchema)));

  it('agree: nothing is pending for idempotencyEntities in a schema built by idempotencyMigrations', async () => {
    const schema = await createSchema('parity');
    schemas.push(schema);
    expect(await pendingStatements(schema, { entities: idempotencyEntities, migrations: idempotencyMigrations })).toEqual([]);
  });

  it('agree with the partitioned migration, partitions and all: nothing is pending for its entity', async () => {
    const schema = await createSchema('parity_partitioned');
    schemas.push(schema);
    const migrations = [...idempotencyMigrations, CreatePartitionedIdempotencyRecords1763900000010];
    // A partition as the store makes them: the schema builder must leave partitions alone.
    const partition = () =>
      sql(
        `CREATE TABLE "${schema}"."${IDEMPOTENCY_PARTITIONED_TABLE}_p20260101t0000" PARTITION OF "${schema}"."${IDEMPOTENCY_PARTITIONED_TABLE}"
         FOR VALUES FROM ('2026-01-01 00:00+00') TO ('2026-01-02 00:00+00')`,
      );
    const entities = [...idempotencyEntities, await partitionedRecordsEntity()];
    expect(await pendingStatements(schema, { entities, migrations }, partition)).toEqual([]);
  });
});
