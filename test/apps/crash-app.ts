/**
 * A small app that the crash suite runs as a child process and kills with SIGKILL in the middle of a
 * handler. With HANG=1 its handlers record that they started, then never finish.
 */
import 'reflect-metadata';
import { Body, Controller, Module, Post } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { InjectDataSource, TypeOrmModule } from '@nestjs/typeorm';
import { DataSource, type EntityManager } from 'typeorm';
import { IdempotencyModule, Idempotent, IdempotentTransaction, idempotencyMigrations, mysqlIdempotencyMigrations } from 'nestjs-idempotency';

const hang = process.env.HANG === '1';
const schema = process.env.SCHEMA ?? 'public';
/** ENGINE=mariadb: SCHEMA names a database on MARIADB_URL's server. */
const mariadb = process.env.ENGINE === 'mariadb';

@Controller()
class WorkController {
  constructor(@InjectDataSource() private readonly dataSource: DataSource) {}

  private async effect(label: string, manager: EntityManager = this.dataSource.manager): Promise<void> {
    await manager.query(mariadb ? 'INSERT INTO effects (label) VALUES (?)' : `INSERT INTO "${schema}".effects (label) VALUES ($1)`, [label]);
  }

  @Post('work')
  @Idempotent({ lease: '2s' })
  async work(@Body() body: { label: string }) {
    await this.effect(`started:${body.label}`);
    if (hang) await new Promise(() => undefined);
    await this.effect(`completed:${body.label}`);
    return { label: body.label, pid: process.pid };
  }

  @Post('work-tx')
  @Idempotent({ transaction: true })
  async workInTransaction(@Body() body: { label: string }, @IdempotentTransaction() em: EntityManager) {
    await this.effect(`tx:${body.label}`, em);
    if (hang) await new Promise(() => undefined);
    return { label: body.label, pid: process.pid };
  }
}

@Module({
  imports: [
    TypeOrmModule.forRoot(
      mariadb
        ? {
            type: 'mariadb',
            url: `${process.env.MARIADB_URL ?? 'mysql://root@127.0.0.1:3306'}/${schema}`,
            migrations: [...mysqlIdempotencyMigrations],
            migrationsRun: true,
          }
        : {
            type: 'postgres',
            url: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
            schema,
            migrations: [...idempotencyMigrations],
            migrationsRun: true,
          },
    ),
    IdempotencyModule.forRoot({ purgeInterval: 0 }),
  ],
  controllers: [WorkController],
})
class CrashAppModule {}

async function main(): Promise<void> {
  const app = await NestFactory.create(CrashAppModule, { logger: ['error'] });
  await app.listen(0, '127.0.0.1');
  process.stdout.write(`listening ${new URL(await app.getUrl()).port}\n`);
}

void main();
