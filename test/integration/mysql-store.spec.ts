import { randomUUID } from 'node:crypto';
import { DataSource, type EntityManager } from 'typeorm';
import { createConnection } from 'mysql2/promise';
import {
  EventVersionInvalidException,
  IdempotencyConfigurationError,
  type IdempotencyModuleOptions,
  MySqlIdempotencyStore,
  mysqlIdempotencyMigrations,
} from 'nestjs-idempotency';
import { openStore } from '../../libs/idempotency/src/storage/open-store';
import { CLOCK } from '../../libs/idempotency/src/storage/mysql/mysql-clock';
import { describeServer, MySqlSession } from '../../libs/idempotency/src/storage/mysql/mysql-session';
import { TransactionAbortedError } from '../../libs/idempotency/src/errors/transaction-aborted.error';
import { createDatabase, dropDatabase, mariadbUrl, mysql } from '../support/mariadb';

/** The rules of the MySQL store that the contract suite does not see: its clock, its lock waits, its purge. */
describe('MySqlIdempotencyStore on MariaDB', () => {
  let database: string;
  let dataSource: DataSource;
  let store: MySqlIdempotencyStore;
  const request = (key: string = randomUUID()) => ({ scope: 'mysql-store', key, fingerprint: null, leaseMs: 60_000, ttlMs: 60_000 });
  const response = { status: 200, headers: [], body: Buffer.from('ok') };

  beforeAll(async () => {
    database = await createDatabase('mysql_store');
    dataSource = await new DataSource({
      type: 'mariadb',
      url: mariadbUrl(database),
      migrations: [...mysqlIdempotencyMigrations],
      migrationsRun: true,
      poolSize: 4,
    }).initialize();
    await dataSource.query('CREATE TABLE effects (id int PRIMARY KEY, label text NOT NULL)');
    store = new MySqlIdempotencyStore(dataSource);
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropDatabase(database);
  });

  /** A connection of the test's own that holds a row lock of `table` (by id) until `release()`. */
  async function holdRow(table: string, id: Buffer) {
    const holder = await createConnection(mariadbUrl(database));
    await holder.query('START TRANSACTION');
    await holder.query(`SELECT id FROM ${table} WHERE id = ? FOR UPDATE`, [id]);
    return {
      release: async () => {
        await holder.query('COMMIT');
        await holder.end();
      },
    };
  }

  describe('clock', () => {
    it('reads UTC whatever the session time zone, and moves within a statement (SYSDATE, not NOW)', async () => {
      const connection = await createConnection(mariadbUrl(database));
      try {
        await connection.query("SET time_zone = '+05:00'");
        const [[row]] = await connection.query<Array<{ first: number; later: number } & import('mysql2').RowDataPacket>>(
          `SELECT TIMESTAMPDIFF(MICROSECOND, '1970-01-01', ${CLOCK}) / 1000 AS first, SLEEP(0.3) AS slept,
                  TIMESTAMPDIFF(MICROSECOND, '1970-01-01', ${CLOCK}) / 1000 AS later`,
        );
        // The server runs on this machine: its clock is this process's, give or take a loaded moment.
        expect(Math.abs(Number(row.first) - Date.now())).toBeLessThan(5_000);
        expect(Number(row.later) - Number(row.first)).toBeGreaterThanOrEqual(250);
      } finally {
        await connection.end();
      }
    });

    it("keeps the record's times on that clock", async () => {
      const claim = request();
      const before = Date.now();
      await store.claim(claim);
      const record = await store.find(claim.scope, claim.key);
      expect(Math.abs(record!.createdAt.getTime() - before)).toBeLessThan(5_000);
      expect(record!.leaseExpiresAt!.getTime() - record!.createdAt.getTime()).toBeCloseTo(60_000, -2);
    });
  });

  describe('lock waits', () => {
    it('ends a transactional claim that waits for a held key by its lockTimeoutMs, below the second innodb_lock_wait_timeout counts in', async () => {
      const claim = request();
      const first = await store.claimInTransaction(claim, 2_000, 30_000);
      expect(first.status).toBe('claimed');
      try {
        // The handler's lock waits get 30 s (innodb_lock_wait_timeout, whole seconds): this test's own timeout fails it
        // if that is what bounds the claim's wait, and not max_statement_time.
        await expect(store.claimInTransaction(claim, 200, 30_000, 30_000)).resolves.toEqual({ status: 'in-flight', retryAfterMs: 1000 });
      } finally {
        if (first.status === 'claimed') await first.claim.rollback();
      }
    }, 20_000);

    it("bounds a lease-mode claim's wait for a row that a transaction holds by the request's deadline", async () => {
      const claim = request();
      const held = await store.claimInTransaction(claim, 2_000, 30_000);
      try {
        await expect(store.claim({ ...claim, deadline: Date.now() + 300 })).resolves.toEqual({ status: 'in-flight', retryAfterMs: 1000 });
      } finally {
        if (held.status === 'claimed') await held.claim.rollback();
      }
    }, 20_000);

    it("gives the handler's statements innodb_lock_wait_timeout in whole seconds, READ COMMITTED, and puts the connection back as it was", async () => {
      // One pooled connection: what a claim leaves on it is what the next user of the pool gets.
      const single = await new DataSource({ type: 'mariadb', url: mariadbUrl(database), poolSize: 1 }).initialize();
      try {
        const settings = async (query: (sql: string) => Promise<Array<Record<string, string>>>) => {
          const [row] = await query(
            'SELECT @@session.innodb_lock_wait_timeout AS lockWait, @@session.tx_isolation AS isolation, @@session.idle_transaction_timeout AS idle',
          );
          return { lockWait: Number(row.lockWait), isolation: row.isolation, idle: Number(row.idle) };
        };
        const before = await settings((sql) => single.query(sql));
        const claimed = await new MySqlIdempotencyStore(single).claimInTransaction(request(), 2_000, 7_500, 2_300);
        if (claimed.status !== 'claimed') throw new Error(claimed.status);
        const during = await settings((sql) => claimed.claim.manager.query(sql));
        await claimed.claim.complete(response, 60_000);
        expect(during).toEqual({ lockWait: 3, isolation: 'READ-COMMITTED', idle: 8 });
        expect(await settings((sql) => single.query(sql))).toEqual(before);
      } finally {
        await single.destroy();
      }
    });

    it('bounds one statement to the millisecond on MariaDB, and in whole seconds on MySQL', () => {
      const session = new MySqlSession(dataSource);
      expect(session.boundLockWait(describeServer('10.11.19-MariaDB'), 'UPDATE t SET a = 1', 250)).toBe(
        'SET STATEMENT max_statement_time=0.250 FOR UPDATE t SET a = 1',
      );
      expect(session.boundLockWait(describeServer('8.0.36'), 'UPDATE t SET a = 1', 250)).toBe('UPDATE /*+ SET_VAR(innodb_lock_wait_timeout=1) */ t SET a = 1');
    });
  });

  describe('purge', () => {
    it('skips a row that a transaction holds, deletes the rest, and the held one once it is free', async () => {
      const server = await store.server();
      expect(server.skipLocked).toBe(true);
      const keys = Array.from({ length: 3 }, () => randomUUID());
      for (const key of keys) {
        const outcome = await store.claim({ ...request(key), ttlMs: 50, leaseMs: 50 });
        if (outcome.status === 'claimed') await store.complete(outcome.ref, response, 50);
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      const [{ id }] = await mysql<{ id: Buffer }>('SELECT id FROM idempotency_records WHERE `key` = ?', [keys[0]], database);
      const holder = await holdRow('idempotency_records', id);
      try {
        // Without SKIP LOCKED the purge would wait 50 s for the held row: the test's timeout fails it.
        let purged = 0;
        for (let deleted = -1; deleted !== 0; purged += deleted) deleted = await store.purgeExpired(10);
        expect(purged).toBeGreaterThanOrEqual(2);
        expect(await mysql('SELECT 1 FROM idempotency_records WHERE `key` IN (?)', [keys], database)).toHaveLength(1);
      } finally {
        await holder.release();
      }
      await store.purgeExpired(10);
      expect(await mysql('SELECT 1 FROM idempotency_records WHERE `key` IN (?)', [keys], database)).toHaveLength(0);
    }, 20_000);
  });

  describe('keys', () => {
    it('keeps keys that a case- or accent-insensitive collation would call equal apart', async () => {
      const id = randomUUID();
      const keys = [`abc-${id}`, `ABC-${id}`, `abc-${id} `, `äbc-${id}`];
      for (const key of keys) expect((await store.claim(request(key))).status).toBe('claimed');
    });
  });

  describe('transaction mode', () => {
    it('commits nothing of a handler whose statement failed, and refuses its later statements, as PostgreSQL does', async () => {
      const claim = request();
      const claimed = await store.claimInTransaction(claim, 2_000, 30_000);
      if (claimed.status !== 'claimed') throw new Error(claimed.status);
      const id = Math.floor(Math.random() * 1e9);
      await claimed.claim.manager.query('INSERT INTO effects (id, label) VALUES (?, ?)', [id, claim.key]);
      await expect(claimed.claim.manager.query('INSERT INTO effects (id, label) VALUES (?, ?)', [id, 'duplicate'])).rejects.toThrow(/Duplicate/);
      await expect(claimed.claim.manager.query('SELECT 1')).rejects.toThrow(/failed earlier/);
      await expect(claimed.claim.complete(response, 60_000)).rejects.toBeInstanceOf(TransactionAbortedError);
      expect(await mysql('SELECT 1 FROM effects WHERE label = ?', [claim.key], database)).toHaveLength(0);
      expect(await store.find(claim.scope, claim.key)).toBeUndefined();
    });

    it('lets a handler recover from a failed statement inside a nested transaction (savepoint)', async () => {
      const claim = request();
      const claimed = await store.claimInTransaction(claim, 2_000, 30_000);
      if (claimed.status !== 'claimed') throw new Error(claimed.status);
      const id = Math.floor(Math.random() * 1e9);
      await claimed.claim.manager.query('INSERT INTO effects (id, label) VALUES (?, ?)', [id, claim.key]);
      // A handler declares TypeORM's own EntityManager, as the README shows.
      const manager = claimed.claim.manager as EntityManager;
      await expect(manager.transaction((inner) => inner.query('INSERT INTO effects (id, label) VALUES (?, ?)', [id, 'duplicate']))).rejects.toThrow(
        /Duplicate/,
      );
      await claimed.claim.complete(response, 60_000);
      expect(await mysql('SELECT 1 FROM effects WHERE label = ?', [claim.key], database)).toHaveLength(1);
    });

    it('records resource versions: newer or equal applied, older stale, too long refused', async () => {
      const resource = randomUUID();
      const outcomes: string[] = [];
      for (const version of ['5', '4', '5', '6.0001', '6']) {
        const claimed = await store.claimInTransaction(request(), 2_000, 30_000);
        if (claimed.status !== 'claimed') throw new Error(claimed.status);
        outcomes.push(await claimed.claim.advanceVersion!(resource, version, 60_000));
        await claimed.claim.complete(response, 60_000);
      }
      expect(outcomes).toEqual(['applied', 'stale', 'applied', 'applied', 'stale']);
      const claimed = await store.claimInTransaction(request(), 2_000, 30_000);
      if (claimed.status !== 'claimed') throw new Error(claimed.status);
      await expect(claimed.claim.advanceVersion!(resource, '1'.repeat(36), 60_000)).rejects.toBeInstanceOf(EventVersionInvalidException);
      await claimed.claim.rollback();
    });
  });
});

describe('store selection from the DataSource', () => {
  const source = (type: string) => ({ options: { type } }) as unknown as DataSource;
  const open = (options: IdempotencyModuleOptions, type: string) => openStore(options, source(type));

  it.each(['mysql', 'mariadb'])("picks the MySQL store for type '%s'", async (type) => {
    expect((await open({}, type)).store).toBeInstanceOf(MySqlIdempotencyStore);
    expect((await open({ store: 'mysql' }, type)).store).toBeInstanceOf(MySqlIdempotencyStore);
  });

  it('refuses an engine it has no store for, saying what to do', async () => {
    await expect(open({}, 'sqlite')).rejects.toThrow(IdempotencyConfigurationError);
    await expect(open({}, 'sqlite')).rejects.toThrow(/type 'sqlite'.*'postgres', 'mysql' or 'mariadb'.*redis.*of your own/);
  });

  it('refuses a store that does not fit the DataSource, and the options of PostgreSQL alone', async () => {
    await expect(open({ store: 'postgres' }, 'mariadb')).rejects.toThrow(/store: 'postgres' does not fit the DataSource of type 'mariadb'/);
    await expect(open({ store: 'mysql' }, 'postgres')).rejects.toThrow(/store: 'mysql' does not fit/);
    await expect(open({ partitioning: { interval: '1d' } }, 'mysql')).rejects.toThrow(/partitioning applies to the PostgreSQL store only/);
    await expect(open({ outbox: { connection: 'redis://127.0.0.1:6379' } }, 'mysql')).rejects.toThrow(/outbox needs PostgreSQL/);
  });
});
