import { BadRequestException, Body, Controller, Param, Post } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { EntityManager } from 'typeorm';
import { Idempotent, IdempotentTransaction } from 'nestjs-idempotency';
import { createSchema, dropSchema, sql } from '../support/database';
import { Effect } from '../support/effects.controller';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { send } from '../support/http';

/**
 * The most common pattern there is: a statement fails (a unique violation), the handler catches it and answers.
 * In transaction mode the failed statement aborted the claim's transaction.
 */
@Controller('aborted')
class AbortingController {
  @Post(':answer')
  @Idempotent({ transaction: true, waitTimeout: '5s' })
  async create(@Param('answer') answer: string, @Body() body: { label: string }, @IdempotentTransaction() em: EntityManager) {
    const saved = await em.getRepository(Effect).save({ label: body.label });
    try {
      // The same primary key again: a unique violation.
      await em.query(`INSERT INTO ${em.getRepository(Effect).metadata.tablePath} (id, label) VALUES ($1, $2)`, [saved.id, body.label]);
    } catch {
      if (answer === 'bad-request') throw new BadRequestException('That order exists already.');
      return { created: body.label };
    }
    return { created: body.label, unexpected: true };
  }
}

describe.each(PLATFORMS)('transaction mode, a statement the handler caught on %s', (platform) => {
  let schema: string;
  let t: TestApp;

  beforeAll(async () => {
    schema = await createSchema(`aborted_${platform}`);
    t = await startApp(platform, { schema, controllers: [AbortingController] });
  });
  afterAll(async () => {
    await t?.close();
    await dropSchema(schema);
  });

  it('delivers, stores and replays the 4xx, with nothing of the handler committed; never a 503', async () => {
    const key = randomUUID();
    const first = await send(t.url, '/aborted/bad-request', { key, body: { label: key } });
    expect(first.status).toBe(400);
    expect(first.json()).toMatchObject({ message: 'That order exists already.' });
    expect(await t.effects(key)).toBe(0);

    const retry = await send(t.url, '/aborted/bad-request', { key, body: { label: key } });
    expect(retry.status).toBe(400);
    expect(retry.text).toBe(first.text);
    expect(retry.headers.get('idempotent-replayed')).toBe('true');
    expect(await t.effects(key)).toBe(0);
    const [record] = await sql<{ state: string; response_status: number }>(
      `SELECT state, response_status FROM "${schema}".idempotency_records WHERE key = $1`,
      [key],
    );
    expect(record).toEqual({ state: 'completed', response_status: 400 });
  });

  it('refuses a 2xx over the aborted transaction with a 500 problem and releases the key', async () => {
    const key = randomUUID();
    const first = await send(t.url, '/aborted/ok', { key, body: { label: key } });
    expect(first.status).toBe(500);
    expect(first.headers.get('content-type')).toContain('application/problem+json');
    expect(first.json()).toMatchObject({ code: 'IDEMPOTENCY_TRANSACTION_ABORTED', status: 500 });
    expect(await t.effects(key)).toBe(0);
    expect(await sql(`SELECT 1 FROM "${schema}".idempotency_records WHERE key = $1`, [key])).toHaveLength(0);

    // Released: the retry runs the handler again (and is refused again, as nothing changed).
    const retry = await send(t.url, '/aborted/ok', { key, body: { label: key } });
    expect(retry.status).toBe(500);
    expect(retry.headers.get('idempotent-replayed')).toBeNull();
  });
});
