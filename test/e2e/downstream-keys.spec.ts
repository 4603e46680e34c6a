import { Body, Controller, Injectable, InternalServerErrorException, Post } from '@nestjs/common';
import { InjectDataSource } from '@nestjs/typeorm';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Column, DataSource, Entity, type EntityManager, PrimaryGeneratedColumn } from 'typeorm';
import { type ClaimIdentity, Idempotent, IdempotencyContext, IdempotencyKey, IdempotentTransaction } from 'nestjs-idempotency';
import { createSchema, dropSchema, sql } from '../support/database';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';

/** One row per handler run: the downstream key it would send, as each way of reading it gave it. */
@Entity({ name: 'derived_keys' })
class DerivedKey {
  @PrimaryGeneratedColumn()
  id!: number;

  @Column({ type: 'text' })
  label!: string;

  @Column({ type: 'integer' })
  attempt!: number;

  /** derive('charge') through the parameter decorator, the injected context and the static one after a timer. */
  @Column({ type: 'text' })
  param!: string;

  @Column({ type: 'text' })
  injected!: string;

  @Column({ type: 'text' })
  timer!: string;

  @Column({ type: 'text' })
  refund!: string;
}

interface Charge {
  label: string;
}

/** What the next run of a label does after its downstream call (a retry has the same body, so it is set here). */
const failNext = new Set<string>();
const holdNext = new Set<string>();
/** Handlers held mid-run until the test lets them go. */
const gates = new Map<string, () => void>();
const held = (label: string) => new Promise<void>((resolve) => gates.set(label, resolve));

/** A service the handler calls, which reads the claim from the context, not from its caller. */
@Injectable()
class Provider {
  constructor(
    private readonly context: IdempotencyContext,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  async record(label: string, claim: ClaimIdentity): Promise<string> {
    await sleep(1);
    const timer = await new Promise<string>((resolve) => setTimeout(() => resolve(IdempotencyContext.derive('charge')), 1));
    // Outside any claim's transaction: a rolled-back attempt keeps its row.
    await this.dataSource.getRepository(DerivedKey).insert({
      label,
      attempt: claim.attempt,
      param: claim.derive('charge'),
      injected: this.context.derive('charge'),
      timer,
      refund: claim.derive('refund'),
    });
    return claim.derive('charge');
  }
}

@Controller('dk')
class DownstreamKeysController {
  constructor(
    private readonly provider: Provider,
    @InjectDataSource() private readonly dataSource: DataSource,
  ) {}

  @Post('lease')
  @Idempotent({ lease: '1s', maxLease: '1s' })
  lease(@Body() body: Charge, @IdempotencyKey() claim: ClaimIdentity) {
    return this.charge(body, claim);
  }

  @Post('tenant')
  @Idempotent({ scope: (req: { headers: Record<string, string | undefined> }) => req.headers['x-tenant'] })
  tenant(@Body() body: Charge, @IdempotencyKey() claim: ClaimIdentity) {
    return this.charge(body, claim);
  }

  @Post('tx')
  @Idempotent({ transaction: true, lease: '1s', maxLease: '1s' })
  async tx(@Body() body: Charge, @IdempotencyKey() claim: ClaimIdentity, @IdempotentTransaction() em: EntityManager) {
    await em.query('SELECT 1');
    return this.charge(body, claim);
  }

  @Post('optional')
  @Idempotent({ required: false })
  async optional(@IdempotencyKey() claim: ClaimIdentity | undefined) {
    // Over pooled connections that claimed requests opened: what they carried must not leak into this request.
    await Promise.all(Array.from({ length: 10 }, () => this.dataSource.query('SELECT pg_sleep(0.01)')));
    let error: string | undefined;
    try {
      IdempotencyContext.derive('charge');
    } catch (thrown) {
      error = (thrown as Error).name;
    }
    return { claim: claim ?? null, current: IdempotencyContext.current() ?? null, error, derived: claim?.derive('charge') ?? null };
  }

  private async charge(body: Charge, claim: ClaimIdentity) {
    const derived = await this.provider.record(body.label, claim);
    if (holdNext.delete(body.label)) await held(body.label);
    if (failNext.delete(body.label)) throw new InternalServerErrorException('the downstream call failed');
    return { derived, scope: claim.scope, key: claim.key, attempt: claim.attempt };
  }
}

describe.each(PLATFORMS)('keys passed downstream, %s', (platform) => {
  let schema: string;
  let t: TestApp;
  const runs = (label: string) =>
    sql<{ attempt: number; param: string; injected: string; timer: string; refund: string }>(
      `SELECT attempt, param, injected, timer, refund FROM "${schema}".derived_keys WHERE label = $1 ORDER BY id`,
      [label],
    );
  const until = async (condition: () => Promise<boolean>) => {
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await sleep(50)) if (await condition()) return;
    throw new Error('timed out waiting for the condition');
  };
  /** Every run derived one key, the same through each way of reading it. */
  const derivedOf = async (label: string) => {
    const rows = await runs(label);
    for (const row of rows) expect([row.injected, row.timer]).toEqual([row.param, row.param]);
    return rows.map((row) => row.param);
  };

  beforeAll(async () => {
    schema = await createSchema(`downstream_${platform}`);
    t = await startApp(platform, { schema, controllers: [DownstreamKeysController], entities: [DerivedKey], providers: [Provider] });
  });
  afterAll(async () => {
    for (const open of gates.values()) open();
    await t?.close();
    await dropSchema(schema);
  });

  it('derives the same key when a retry takes over a claim whose lease ran out', async () => {
    const key = randomUUID();
    holdNext.add(key);
    const first = send(t.url, '/dk/lease', { key, body: { label: key } });
    await until(async () => (await runs(key)).length === 1);
    // 409 while the held first attempt's lease (1s, not renewed past maxLease) is live; then the take-over.
    let retry = await send(t.url, '/dk/lease', { key, body: { label: key } });
    await until(async () => (retry = await send(t.url, '/dk/lease', { key, body: { label: key } })).status !== 409);
    expect(retry.status).toBe(201);
    expect(retry.json()).toMatchObject({ attempt: 2, key, scope: 'POST /dk/lease' });
    gates.get(key)?.();
    await first;

    const derived = await derivedOf(key);
    expect((await runs(key)).map((row) => row.attempt)).toEqual([1, 2]);
    expect(derived).toHaveLength(2);
    expect(derived[1]).toBe(derived[0]);
    expect(retry.json<{ derived: string }>().derived).toBe(derived[0]);
  });

  it('derives the same key when a failed attempt released the claim and a retry runs it again', async () => {
    const key = randomUUID();
    failNext.add(key);
    expect((await send(t.url, '/dk/lease', { key, body: { label: key } })).status).toBe(500);
    expect((await send(t.url, '/dk/lease', { key, body: { label: key } })).status).toBe(201);
    const derived = await derivedOf(key);
    expect(derived).toHaveLength(2);
    expect(derived[1]).toBe(derived[0]);
  });

  it('derives another key for another name, key or scope', async () => {
    const key = randomUUID();
    const other = randomUUID();
    for (const [label, tenant, k] of [
      [`${key}:a`, 'a', key],
      [`${key}:b`, 'b', key],
      [`${key}:other`, 'a', other],
    ]) {
      expect((await send(t.url, '/dk/tenant', { key: k, body: { label }, headers: { 'x-tenant': tenant } })).status).toBe(201);
    }
    const rows = [...(await runs(`${key}:a`)), ...(await runs(`${key}:b`)), ...(await runs(`${key}:other`))];
    expect(rows).toHaveLength(3);
    const all = rows.flatMap((row) => [row.param, row.refund]);
    expect(new Set(all).size).toBe(6);
  });

  it('transaction mode: the same key after a rolled-back attempt and after one stalled past maxLease', async () => {
    const key = randomUUID();
    failNext.add(key);
    expect((await send(t.url, '/dk/tx', { key, body: { label: key } })).status).toBe(500);
    // Held past maxLease: its transaction is rolled back, and the retry runs.
    holdNext.add(key);
    const stalled = send(t.url, '/dk/tx', { key, body: { label: key } });
    await until(async () => (await runs(key)).length === 2);
    let retry = await send(t.url, '/dk/tx', { key, body: { label: key } });
    await until(async () => retry.status === 201 || (retry = await send(t.url, '/dk/tx', { key, body: { label: key } })).status === 201);
    gates.get(key)?.();
    // Its transaction was rolled back at maxLease: nothing it did holds, and its client is told to retry.
    expect((await stalled).status).toBe(503);

    const derived = await derivedOf(key);
    expect(derived).toHaveLength(3);
    expect(new Set(derived).size).toBe(1);
    expect(retry.json<{ derived: string }>().derived).toBe(derived[0]);
  });

  it('gives no claim where the key is optional and absent, and refuses derive() there', async () => {
    const reply = await send(t.url, '/dk/optional', { body: {} });
    expect(reply.status).toBe(201);
    expect(reply.json()).toEqual({ claim: null, current: null, error: 'IdempotencyConfigurationError', derived: null });
    const key = randomUUID();
    const claimed = await send(t.url, '/dk/optional', { key, body: {} });
    expect(claimed.json()).toMatchObject({ claim: { scope: 'POST /dk/optional', key, attempt: 1 }, current: { key } });
    expect(claimed.json<{ derived: string }>().derived).toMatch(/^[A-Za-z0-9_-]{43}$/);
  });

  it('gives run() and runJob() the claim: the same key after a failure, a lease take-over, and in transaction mode', async () => {
    const key = randomUUID();
    const derive = () => IdempotencyContext.derive('charge');
    const failing = () => Promise.reject(new Error(`failed with ${derive()}`));
    const first = await t.service.run(key, failing, { scope: 'payments' }).catch((error: Error) => error.message);
    const second = await t.service.run(key, derive, { scope: 'payments' });
    expect(first).toBe(`failed with ${second}`);
    expect(await t.service.run(key, derive, { scope: 'refunds' })).not.toBe(second);

    // A first run held past its lease; the second takes the claim over.
    const stalledKey = randomUUID();
    let stalledDerived = '';
    const stalled = t.service.run(
      stalledKey,
      async () => {
        stalledDerived = derive();
        await held(stalledKey);
        return stalledDerived;
      },
      { lease: '1s', maxLease: '1s' },
    );
    await until(() => Promise.resolve(stalledDerived !== ''));
    const takenOver = await t.service.run(stalledKey, () => ({ derived: derive(), attempt: IdempotencyContext.current()?.attempt }), {
      lease: '1s',
      maxLease: '1s',
      onInFlight: 'wait',
      waitTimeout: '10s',
    });
    gates.get(stalledKey)?.();
    await stalled;
    expect(takenOver).toEqual({ derived: stalledDerived, attempt: 2 });

    const txKey = randomUUID();
    const inTransaction = await t.service
      .run(txKey, (em: EntityManager) => em.query('SELECT 1').then(() => Promise.reject(new Error(derive()))), { transaction: true })
      .catch((error: Error) => error.message);
    expect(await t.service.run(txKey, derive, { transaction: true })).toBe(inTransaction);

    const job = { id: randomUUID(), queueName: 'fulfilment' };
    const jobFailure = await t.service.runJob(job, () => Promise.reject(new Error(derive()))).catch((error: Error) => error.message);
    const jobRun = await t.service.runJob(job, () => ({ derived: derive(), claim: IdempotencyContext.current() }));
    expect(jobRun).toMatchObject({ derived: jobFailure, claim: { scope: 'job:fulfilment', key: job.id, attempt: 1 } });
    expect(IdempotencyContext.current()).toBeUndefined();
  });
});
