import { randomBytes, randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { type IdempotencyStore, idempotencyMigrations, type StoredResponse, TypeOrmIdempotencyStore, withEncryptionAtRest } from 'nestjs-idempotency';
import { type ClaimRequest } from 'nestjs-idempotency/testing';
import { IdempotencyDecryptionError } from '../../libs/idempotency/src/errors/decryption.errors';
import { createSchema, DATABASE_URL, dropSchema, sql } from '../support/database';

/** The encrypting decorator over the real PostgreSQL store, without HTTP in between. */
describe('encryption at rest over the PostgreSQL store', () => {
  let schema: string;
  let dataSource: DataSource;
  let plain: TypeOrmIdempotencyStore;
  const keys = [{ id: 'k1', key: randomBytes(32) }];
  const response: StoredResponse = { status: 201, headers: [['location', '/orders/7']], body: Buffer.from('{"secret":"s3cr3t-value"}') };
  const request = (key = randomUUID(), scope = 'POST /orders'): ClaimRequest => ({ scope, key, fingerprint: 'f', leaseMs: 30_000, ttlMs: 60_000 });
  const stored = async (key: string) =>
    (
      await sql<{ response_body: Buffer; response_headers: unknown }>(
        `SELECT response_body, response_headers FROM "${schema}".idempotency_records WHERE key = $1`,
        [key],
      )
    )[0];

  beforeAll(async () => {
    schema = await createSchema('encrypted_store');
    dataSource = await new DataSource({
      type: 'postgres',
      url: DATABASE_URL,
      schema,
      migrations: [...idempotencyMigrations],
      migrationsRun: true,
      extra: { max: 4 },
    }).initialize();
    plain = new TypeOrmIdempotencyStore(dataSource);
    await dataSource.query(`CREATE TABLE "${schema}".tx_effects (label text NOT NULL)`);
  });
  afterAll(async () => {
    await dataSource?.destroy();
    await dropSchema(schema);
  });

  async function completeWith(store: IdempotencyStore, claim: ClaimRequest): Promise<void> {
    const outcome = await store.claim(claim);
    if (outcome.status !== 'claimed') throw new Error(`expected a claim, got ${outcome.status}`);
    expect(await store.complete(outcome.ref, response, 60_000)).toBe(true);
  }

  it('stores the ciphertext and answers claim, peek and find with the plaintext', async () => {
    const store = withEncryptionAtRest(plain, { keys });
    const claim = request();
    await completeWith(store, claim);

    const row = await stored(claim.key);
    expect(row.response_body.includes('s3cr3t')).toBe(false);
    expect(row.response_headers).toEqual([]);

    expect(await store.claim(claim)).toMatchObject({ status: 'completed', response });
    expect(await store.peek(claim)).toMatchObject({ status: 'completed', response });
    expect((await store.find(claim.scope, claim.key))?.response).toEqual(response);
    // The store underneath sees only the envelope.
    expect((await plain.find(claim.scope, claim.key))?.response?.body.includes('s3cr3t')).toBe(false);
  });

  it('refuses a body copied to another record', async () => {
    const store = withEncryptionAtRest(plain, { keys });
    const original = request();
    const other = request();
    await completeWith(store, original);
    await completeWith(store, other);
    await sql(
      `UPDATE "${schema}".idempotency_records SET response_body = (SELECT response_body FROM "${schema}".idempotency_records WHERE key = $1) WHERE key = $2`,
      [original.key, other.key],
    );
    await expect(store.claim(other)).rejects.toThrow(IdempotencyDecryptionError);
    await expect(store.peek(other)).rejects.toThrow(/fails authentication with key "k1"/);
    await expect(store.find(other.scope, other.key)).rejects.toThrow(IdempotencyDecryptionError);
  });

  it('is transactional exactly when the store is, and keeps the transactional claim whole', () => {
    const store = withEncryptionAtRest(plain, { keys });
    expect(typeof (store as Partial<typeof plain>).claimInTransaction).toBe('function');
    expect((store as typeof plain).manager).toBe(plain.manager);
    const leaseOnly = withEncryptionAtRest(
      { claim: jest.fn(), peek: jest.fn(), complete: jest.fn(), release: jest.fn(), renew: jest.fn(), find: jest.fn(), purgeExpired: jest.fn() },
      { keys },
    );
    expect('claimInTransaction' in leaseOnly).toBe(false);
    expect('manager' in leaseOnly).toBe(false);
  });

  it('encrypts what a transactional claim commits, with its business writes, and opens it again', async () => {
    const store = withEncryptionAtRest(plain, { keys });
    const claim = request();
    const outcome = await store.claimInTransaction(claim, 2000, 10_000);
    if (outcome.status !== 'claimed') throw new Error(`expected a claim, got ${outcome.status}`);
    expect(typeof outcome.claim.advanceVersion).toBe('function');
    expect(await outcome.claim.advanceVersion!('order-7', '1', 60_000)).toBe('applied');
    await outcome.claim.manager.query(`INSERT INTO "${schema}".tx_effects (label) VALUES ($1)`, [claim.key]);
    await outcome.claim.complete(response, 60_000);

    expect((await stored(claim.key)).response_body.includes('s3cr3t')).toBe(false);
    expect(await store.claimInTransaction(claim, 2000, 10_000)).toMatchObject({ status: 'completed', response });
    expect(await sql(`SELECT label FROM "${schema}".tx_effects WHERE label = $1`, [claim.key])).toHaveLength(1);
  });

  it('rolls a transactional claim back through the decorator', async () => {
    const store = withEncryptionAtRest(plain, { keys });
    const claim = request();
    const outcome = await store.claimInTransaction(claim, 2000, 10_000);
    if (outcome.status !== 'claimed') throw new Error(`expected a claim, got ${outcome.status}`);
    await outcome.claim.rollback();
    expect(await store.find(claim.scope, claim.key)).toBeUndefined();
  });

  it('reads records stored in clear, and refuses encrypted ones once encryption is off', async () => {
    const before = request();
    await completeWith(plain, before);
    expect(await withEncryptionAtRest(plain, { keys }).claim(before)).toMatchObject({ status: 'completed', response });

    const encrypted = request();
    await completeWith(withEncryptionAtRest(plain, { keys }), encrypted);
    const off = withEncryptionAtRest(plain, undefined);
    await expect(off.claim(encrypted)).rejects.toThrow(/encrypted with key "k1", but encryption is not configured/);
    await expect(off.claimInTransaction(encrypted, 2000, 10_000)).rejects.toThrow(IdempotencyDecryptionError);
    // The refused read left no transaction open: every connection is back in the pool.
    const pool = (dataSource.driver as unknown as { master: { totalCount: number; idleCount: number } }).master;
    expect(pool.idleCount).toBe(pool.totalCount);
  });
});
