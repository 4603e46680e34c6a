/**
 * The parts of TypeORM's DataSource, EntityManager and QueryRunner that this library uses, as structural types.
 * TypeORM's own objects fit them, and the shipped types name no type of TypeORM: they compile in an app that
 * has no TypeORM installed (records in Redis), with `skipLibCheck: false`.
 */

/** TypeORM's `IsolationLevel`. */
export type IsolationLevelLike = 'READ COMMITTED' | 'READ UNCOMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE' | 'SNAPSHOT';

/** What TypeORM's `QueryRunner.query(sql, values, true)` returns. */
export interface QueryResultLike {
  records?: unknown[];
  affected?: number;
}

/** A TypeORM `QueryRunner`: one pooled connection, and the transaction open on it. */
export interface QueryRunnerLike {
  readonly dataSource: DataSourceLike;
  /** The EntityManager that works through this connection. */
  readonly manager: EntityManagerLike;
  readonly isReleased: boolean;
  readonly isTransactionActive: boolean;
  /** Takes the connection from the pool; resolves to the driver's client (node-postgres' with `pg`). */
  connect(): Promise<unknown>;
  release(): Promise<void>;
  startTransaction(isolationLevel?: IsolationLevelLike): Promise<void>;
  commitTransaction(): Promise<void>;
  rollbackTransaction(): Promise<void>;
  query(query: string, parameters: unknown[] | undefined, useStructuredResult: true): Promise<QueryResultLike>;
  query(query: string, parameters?: unknown[]): Promise<unknown>;
}

/**
 * A TypeORM `EntityManager`. Where a handler is given one, it may declare TypeORM's own type:
 * `@IdempotentTransaction() em: EntityManager`, `idempotency.run(key, (em: EntityManager) => ..., { transaction: true })`.
 */
export interface EntityManagerLike {
  /** The connection of the transaction it works in; none for the DataSource's own manager. */
  readonly queryRunner?: QueryRunnerLike;
  query<T = unknown>(query: string, parameters?: unknown[]): Promise<T>;
}

/** What a transaction's end tells a TypeORM subscriber. */
export interface TransactionEventLike {
  queryRunner: QueryRunnerLike;
}

/** A TypeORM subscriber, as far as the outbox listens: the end of each transaction. */
export interface TransactionSubscriberLike {
  afterTransactionCommit?(event: TransactionEventLike): void;
  afterTransactionRollback?(event: TransactionEventLike): void;
}

/** A TypeORM `DataSource`, initialized: the app's connection pool. */
export interface DataSourceLike {
  /** Its options; `type`, `schema` and `driver` are read (through narrower types where they differ by driver). */
  readonly options: { readonly type: string };
  /** The driver; the PostgreSQL store reaches node-postgres' pool through it. */
  readonly driver: unknown;
  readonly manager: EntityManagerLike;
  readonly subscribers: TransactionSubscriberLike[];
  createQueryRunner(mode?: 'master' | 'slave'): QueryRunnerLike;
  query<T = unknown>(query: string, parameters?: unknown[]): Promise<T>;
  transaction<T>(runInTransaction: (manager: EntityManagerLike) => Promise<T>): Promise<T>;
}

/** A TypeORM migration: what `migrations: [...]` of a DataSource takes (as a class) and runs. */
export interface MigrationLike {
  name?: string;
  up(queryRunner: QueryRunnerLike): Promise<unknown>;
  down(queryRunner: QueryRunnerLike): Promise<unknown>;
}
