import type { LoggerService } from '@nestjs/common';
import { randomBytes, randomUUID } from 'node:crypto';
import type { EncryptionOptions } from 'nestjs-idempotency';

type EncryptionKey = EncryptionOptions['keys'][number];
import { createSchema, dropSchema, sql } from '../support/database';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { type Reply, send } from '../support/http';

const keyA: EncryptionKey = { id: 'key-a', key: randomBytes(32) };
const keyB: EncryptionKey = { id: 'key-b', key: randomBytes(32).toString('base64') };

/** Encryption at rest through HTTP: what the table holds, replays, rotation across restarts, and keys gone. */
describe.each(PLATFORMS)('encryption at rest on %s', (platform) => {
  let schema: string;

  beforeAll(async () => {
    schema = await createSchema(`encryption_${platform}`);
  });
  afterAll(async () => {
    await dropSchema(schema);
  });

  /** Runs `work` against an app started with `encryption`, then stops it (the next start is a restart). */
  async function withApp<T>(encryption: EncryptionOptions | undefined, work: (t: TestApp) => Promise<T>, logger?: LoggerService): Promise<T> {
    const t = await startApp(platform, { schema, idempotency: { encryption }, logger });
    try {
      return await work(t);
    } finally {
      await t.close();
    }
  }

  /** The record as the table holds it, with the id of the key that encrypted it (the query in docs/encryption.md). */
  async function storedRecord(key: string) {
    const [row] = await sql<{ body: Buffer; headers: unknown; key_id: string | null }>(
      `SELECT response_body AS body, response_headers AS headers,
              CASE WHEN substring(response_body from 1 for 8) = '\\x006964656d656e63'::bytea
                   THEN convert_from(substring(response_body from 11 for get_byte(response_body, 9)), 'SQL_ASCII') END AS key_id
       FROM "${schema}".idempotency_records WHERE key = $1`,
      [key],
    );
    return row;
  }

  const order = (t: TestApp, key: string, path = '/t/basic') => send(t.url, path, { key, body: { label: key } });

  function expectReplayOf(replay: Reply, first: Reply): void {
    expect(replay.status).toBe(first.status);
    expect(replay.text).toBe(first.text);
    expect(replay.headers.get('content-type')).toBe(first.headers.get('content-type'));
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
  }

  it('stores neither the body nor its headers in clear, and replays a duplicate byte for byte', async () => {
    await withApp({ keys: [keyA] }, async (t) => {
      const key = randomUUID();
      const first = await order(t, key);
      expect(first.status).toBe(201);
      const row = await storedRecord(key);
      expect(row.key_id).toBe('key-a');
      expect(row.body.includes(key)).toBe(false);
      expect(row.body.includes('application/json')).toBe(false);
      expect(row.headers).toEqual([]);
      expectReplayOf(await order(t, key), first);
      expect(await t.effects(key)).toBe(1);
    });
  });

  it('rotates: records of key A are replayed after a restart with keys [B, A], new ones are written under B', async () => {
    const old = randomUUID();
    const first = await withApp({ keys: [keyA] }, (t) => order(t, old));
    expect((await storedRecord(old)).key_id).toBe('key-a');

    await withApp({ keys: [keyB, keyA] }, async (t) => {
      expectReplayOf(await order(t, old), first);
      expect(await t.effects(old)).toBe(1);

      const fresh = randomUUID();
      const written = await order(t, fresh);
      expect(written.status).toBe(201);
      expect((await storedRecord(fresh)).key_id).toBe('key-b');
      expectReplayOf(await order(t, fresh), written);
      expect(await t.effects(fresh)).toBe(1);
    });
  });

  it('replays a record stored before encryption was turned on', async () => {
    const key = randomUUID();
    const first = await withApp(undefined, (t) => order(t, key));
    const row = await storedRecord(key);
    expect(row.key_id).toBeNull();
    expect(row.body.includes(key)).toBe(true);

    await withApp({ keys: [keyA] }, async (t) => {
      expectReplayOf(await order(t, key), first);
      expect(await t.effects(key)).toBe(1);
    });
  });

  it.each([
    ['no longer among the keys', { keys: [keyB] }, /encrypted with key "key-a", which is not among encryption.keys \("key-b"\)/],
    ['gone with encryption turned off', undefined, /encrypted with key "key-a", but encryption is not configured/],
  ])('answers 503, runs nothing and logs the key id when the key of a record is %s', async (_, encryption, logged) => {
    const key = randomUUID();
    const txKey = randomUUID();
    await withApp({ keys: [keyA] }, async (t) => {
      await order(t, key);
      await order(t, txKey, '/t/tx');
    });

    const errors: string[] = [];
    const quiet = () => undefined;
    const logger: LoggerService = { log: quiet, warn: quiet, debug: quiet, verbose: quiet, error: (message: unknown) => errors.push(String(message)) };
    await withApp(
      encryption,
      async (t) => {
        for (const [label, path] of [
          [key, '/t/basic'],
          [txKey, '/t/tx'],
        ]) {
          const refused = await order(t, label, path);
          expect(refused.status).toBe(503);
          expect(refused.json()).toMatchObject({ code: 'IDEMPOTENCY_STORE_UNAVAILABLE' });
          expect(refused.headers.get('retry-after')).toBeTruthy();
          expect(refused.text.includes('key-a')).toBe(false);
          expect(await t.effects(label)).toBe(1);
        }
      },
      logger,
    );
    expect(errors.filter((message) => logged.test(message))).toHaveLength(2);
    expect(errors.some((message) => message.includes(key) || message.includes(txKey))).toBe(false);

    // With the key back (after the one that encrypts), the records are replayed again.
    await withApp({ keys: [keyB, keyA] }, async (t) => {
      expect((await order(t, key)).headers.get('idempotent-replayed')).toBe('true');
      expect((await order(t, txKey, '/t/tx')).headers.get('idempotent-replayed')).toBe('true');
    });
  });

  it('decryptOnly: stores new records in clear and still replays the encrypted ones', async () => {
    const encrypted = randomUUID();
    const first = await withApp({ keys: [keyA] }, (t) => order(t, encrypted));
    await withApp({ keys: [keyA], decryptOnly: true }, async (t) => {
      expectReplayOf(await order(t, encrypted), first);
      const clear = randomUUID();
      expect((await order(t, clear)).status).toBe(201);
      expect((await storedRecord(clear)).key_id).toBeNull();
    });
  });

  it('works in transaction mode: the encrypted response commits with the business writes', async () => {
    await withApp({ keys: [keyA] }, async (t) => {
      const key = randomUUID();
      const first = await order(t, key, '/t/tx');
      expect(first.status).toBe(201);
      const row = await storedRecord(key);
      expect(row.key_id).toBe('key-a');
      expect(row.body.includes(key)).toBe(false);
      expectReplayOf(await order(t, key, '/t/tx'), first);
      expect(await t.effects(key)).toBe(1);

      // A failing handler still rolls back its writes and the claim.
      const failing = randomUUID();
      expect((await send(t.url, '/t/tx', { key: failing, body: { label: failing, fail: true } })).status).toBe(500);
      expect(await t.effects(failing)).toBe(0);
      expect(await storedRecord(failing)).toBeUndefined();
    });
  });

  it('encrypts what IdempotencyService.run() stores, and find() opens it', async () => {
    await withApp({ keys: [keyA] }, async (t) => {
      const key = randomUUID();
      expect(await t.service.run(key, () => ({ secret: key }))).toEqual({ secret: key });
      expect((await storedRecord(key)).body.includes(key)).toBe(false);
      expect(await t.service.run(key, () => ({ secret: 'ran twice' }))).toEqual({ secret: key });
      expect((await t.service.find(key))?.response?.body.toString()).toBe(JSON.stringify({ secret: key }));
    });
  });
});
