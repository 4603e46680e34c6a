import { createHash, randomUUID } from 'node:crypto';
import { createSchema, dropSchema } from '../support/database';
import { PLATFORMS, startApp, type TestApp } from '../support/harness';
import { graphql, RECORD } from './graphql-client';
import { graphqlModule, holdResolvers, MutationsResolver } from './mutations.resolver';

describe.each(PLATFORMS)('@Idempotent() GraphQL mutations over Apollo on %s', (platform) => {
  let schema: string;
  let t: TestApp;

  beforeAll(async () => {
    schema = await createSchema(`gql_${platform}`);
    t = await startApp(platform, { schema, controllers: [], imports: [graphqlModule()], providers: [MutationsResolver] });
  });
  afterAll(async () => {
    await t?.close();
    await dropSchema(schema);
  });

  it('runs the first call, and replays the same data to a duplicate, marked in extensions and by the header', async () => {
    const key = randomUUID();
    const first = await graphql(t.url, RECORD, { label: key, quantity: 2 }, { key });
    const second = await graphql(t.url, RECORD, { quantity: 2, label: key }, { key });
    expect(first.errors).toBeUndefined();
    expect(first.data?.record).toMatchObject({ label: key, quantity: 2, tags: ['a', key.slice(0, 4)] });
    expect(first.extensions?.idempotency).toEqual({ replayed: false, fields: { record: { replayed: false } } });
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    expect(second.data).toEqual(first.data);
    expect(second.extensions?.idempotency).toEqual({ replayed: true, fields: { record: { replayed: true } } });
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(await t.effects(key)).toBe(1);
  });

  it('runs 20 concurrent duplicates once: one effect, every other one the same data or in flight', async () => {
    const key = randomUUID();
    const replies = await Promise.all(Array.from({ length: 20 }, () => graphql(t.url, RECORD, { label: key }, { key })));
    const answered = replies.filter((reply) => reply.data?.record);
    const inFlight = replies.filter((reply) => reply.errors?.[0]?.extensions?.code === 'IDEMPOTENCY_KEY_IN_USE');
    expect(answered.length + inFlight.length).toBe(20);
    expect(new Set(answered.map((reply) => JSON.stringify(reply.data))).size).toBe(1);
    expect(await t.effects(key)).toBe(1);
    const after = await graphql(t.url, RECORD, { label: key }, { key });
    expect(after.data).toEqual(answered[0].data);
  });

  it('refuses the key reused with other arguments, with the HTTP code and status', async () => {
    const key = randomUUID();
    await graphql(t.url, RECORD, { label: key, quantity: 1 }, { key });
    const reused = await graphql(t.url, RECORD, { label: key, quantity: 5 }, { key });
    expect(reused.status).toBe(200);
    expect(reused.data).toBeNull();
    expect(reused.errors?.[0]).toMatchObject({ path: ['record'], extensions: { code: 'IDEMPOTENCY_KEY_REUSED', status: 422 } });
    expect(await t.effects(key)).toBe(1);
  });

  it('refuses a duplicate while the first is in flight, with a retry hint, and replays once it is done', async () => {
    const key = randomUUID();
    const held = holdResolvers(key);
    const first = graphql(t.url, RECORD, { label: key }, { key });
    await held.entered;
    const duplicate = await graphql(t.url, RECORD, { label: key }, { key });
    held.release();
    expect(duplicate.errors?.[0]).toMatchObject({ extensions: { code: 'IDEMPOTENCY_KEY_IN_USE', status: 409, retryAfter: expect.any(Number) as unknown } });
    expect(duplicate.extensions?.idempotency?.fields.record).toMatchObject({ replayed: false, retryAfter: expect.any(Number) as unknown });
    expect(Number(duplicate.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect((await first).data?.record).toBeDefined();
    expect((await graphql(t.url, RECORD, { label: key }, { key })).data).toEqual((await first).data);
    expect(await t.effects(key)).toBe(1);
  });

  it('refuses a call without a key, and runs nothing', async () => {
    const label = randomUUID();
    const missing = await graphql(t.url, RECORD, { label });
    expect(missing.errors?.[0]).toMatchObject({ extensions: { code: 'IDEMPOTENCY_KEY_MISSING', status: 400 } });
    const invalid = await graphql(t.url, RECORD, { label }, { key: 'x'.repeat(256) });
    expect(invalid.errors?.[0]).toMatchObject({ extensions: { code: 'IDEMPOTENCY_KEY_INVALID', status: 400 } });
    expect(await t.effects(label)).toBe(0);
  });

  it('takes the key from an argument: the same key with the same arguments replays', async () => {
    const key = randomUUID();
    const mutation = `mutation($k: String!, $label: String!) { recordByArgument(idempotencyKey: $k, label: $label) { runId } }`;
    const first = await graphql(t.url, mutation, { k: key, label: key });
    const second = await graphql(t.url, mutation, { k: key, label: key });
    expect(second.data).toEqual(first.data);
    expect(second.extensions?.idempotency?.replayed).toBe(true);
    expect(await t.effects(key)).toBe(1);
    const missing = await graphql(t.url, mutation, { k: '', label: key });
    expect(missing.errors?.[0]?.extensions?.code).toBe('IDEMPOTENCY_KEY_INVALID');
  });

  it('runs a mutation whose key is optional without idempotency when the call has none', async () => {
    const label = randomUUID();
    const mutation = `mutation($label: String!, $k: String) { recordOptionally(label: $label, idempotencyKey: $k) { runId } }`;
    const first = await graphql(t.url, mutation, { label });
    const second = await graphql(t.url, mutation, { label });
    expect(second.data).not.toEqual(first.data);
    expect(second.extensions).toBeUndefined();
    expect(await t.effects(label)).toBe(2);
    const keyed = [await graphql(t.url, mutation, { label, k: label }), await graphql(t.url, mutation, { label, k: label })];
    expect(keyed[1].data).toEqual(keyed[0].data);
    expect(await t.effects(label)).toBe(3);
  });

  it("takes the key from a function, in the scope its scope function reads off the operation's HTTP request", async () => {
    const label = randomUUID();
    const mutation = `mutation($label: String!) { recordByFunction(label: $label) { runId } }`;
    const a = await graphql(t.url, mutation, { label }, { headers: { 'x-tenant': 'a' } });
    const a2 = await graphql(t.url, mutation, { label }, { headers: { 'x-tenant': 'a' } });
    const b = await graphql(t.url, mutation, { label }, { headers: { 'x-tenant': 'b' } });
    expect(a2.data).toEqual(a.data);
    expect(b.data).not.toEqual(a.data);
    expect(await t.effects(label)).toBe(2);
  });

  it('stores a user error (an HttpException below 500, BAD_USER_INPUT) and replays it as it was reported', async () => {
    for (const kind of ['bad-request', 'user-input']) {
      const key = randomUUID();
      const mutation = `mutation($label: String!, $kind: String!) { fail(label: $label, kind: $kind) { runId } }`;
      const first = await graphql(t.url, mutation, { label: key, kind }, { key });
      const second = await graphql(t.url, mutation, { label: key, kind }, { key });
      expect(first.errors).toHaveLength(1);
      expect(second.errors).toEqual(first.errors);
      expect(second.extensions?.idempotency?.replayed).toBe(true);
      expect(await t.effects(key)).toBe(1);
    }
  });

  it('releases the key on an unexpected error or a 409, so the retry runs again', async () => {
    for (const kind of ['crash', 'conflict']) {
      const key = randomUUID();
      const mutation = `mutation($label: String!, $kind: String!) { fail(label: $label, kind: $kind) { runId } }`;
      const first = await graphql(t.url, mutation, { label: key, kind }, { key });
      const second = await graphql(t.url, mutation, { label: key, kind }, { key });
      expect(first.errors).toHaveLength(1);
      expect(second.extensions?.idempotency?.replayed).toBe(false);
      expect(await t.effects(key)).toBe(2);
    }
  });

  it('claims each mutation field of one operation on its own, under its own key', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    const both = `mutation($a: String!, $b: String!) { first: recordByArgument(idempotencyKey: $a, label: $a) { runId } second: recordByArgument(idempotencyKey: $b, label: $b) { runId } }`;
    const first = await graphql(t.url, both, { a, b });
    const again = await graphql(t.url, both, { a, b });
    expect(first.errors).toBeUndefined();
    expect(again.data).toEqual(first.data);
    expect(again.extensions?.idempotency).toEqual({ replayed: true, fields: { first: { replayed: true }, second: { replayed: true } } });
    expect([await t.effects(a), await t.effects(b)]).toEqual([1, 1]);
    // Replayed one by one: the second field alone, in another operation, gets its stored data.
    const alone = await graphql(
      t.url,
      `
        mutation ($b: String!) {
          second: recordByArgument(idempotencyKey: $b, label: $b) {
            runId
          }
        }
      `,
      { b },
    );
    expect(alone.data).toEqual({ second: first.data?.second });
  });

  it('refuses the second field of an operation that shares one Idempotency-Key header between two mutations', async () => {
    const key = randomUUID();
    const [a, b] = [`${key}-a`, `${key}-b`];
    const both = `mutation($a: String!, $b: String!) { first: record(label: $a) { runId } second: record(label: $b) { runId } }`;
    const reply = await graphql(t.url, both, { a, b }, { key });
    expect(reply.errors).toHaveLength(1);
    expect(reply.errors?.[0]).toMatchObject({ path: ['second'], extensions: { code: 'IDEMPOTENCY_KEY_REUSED' } });
    expect([await t.effects(a), await t.effects(b)]).toEqual([1, 0]);
  });

  it("gives the resolver its claim's downstream key, the same in the replay and derived from the mutation's scope and key", async () => {
    const key = randomUUID();
    const query = 'mutation Derived($label: String!) { derived(label: $label) }';
    const first = await graphql(t.url, query, { label: key }, { key });
    const second = await graphql(t.url, query, { label: key }, { key });
    const other = await graphql(t.url, query, { label: key }, { key: randomUUID() });
    const expected = createHash('sha256')
      .update(JSON.stringify(['nestjs-idempotency/derive/v1', 'GRAPHQL Mutation.derived', key, 'charge']))
      .digest('base64url');
    expect(first.errors).toBeUndefined();
    expect(first.data?.derived).toEqual([expected, expected, expect.any(String)]);
    expect(second.data).toEqual(first.data);
    expect((other.data?.derived as string[])[0]).not.toBe(expected);
    expect(await t.effects(key)).toBe(2);
  });

  it('leaves queries alone', async () => {
    const reply = await graphql(
      t.url,
      `
        query ($label: String!) {
          effects(label: $label)
        }
      `,
      { label: 'none' },
    );
    expect(reply.data).toEqual({ effects: 0 });
    expect(reply.extensions).toBeUndefined();
  });

  describe('transaction mode', () => {
    const mutation = `mutation($label: String!, $fail: Boolean) { recordInTransaction(label: $label, fail: $fail) { runId } }`;

    it('commits the effect with the stored result, and replays it', async () => {
      const key = randomUUID();
      const first = await graphql(t.url, mutation, { label: key }, { key });
      const second = await graphql(t.url, mutation, { label: key }, { key });
      expect(second.data).toEqual(first.data);
      expect(second.extensions?.idempotency?.replayed).toBe(true);
      expect(await t.effects(key)).toBe(1);
    });

    it('rolls the effect back with the claim when the resolver fails', async () => {
      const key = randomUUID();
      const first = await graphql(t.url, mutation, { label: key, fail: true }, { key });
      expect(first.errors).toHaveLength(1);
      expect(await t.effects(key)).toBe(0);
      // The key was given back: the retry runs, and commits.
      const retry = await graphql(t.url, mutation, { label: key, fail: true }, { key });
      expect(retry.extensions?.idempotency?.replayed).toBe(false);
      expect(await t.effects(key)).toBe(0);
      // No record was kept, so a corrected call with the same key is a first call.
      const corrected = await graphql(t.url, mutation, { label: key, fail: false }, { key });
      expect(corrected.data?.recordInTransaction).toBeDefined();
      expect(await t.effects(key)).toBe(1);
    });

    it("stores a user error with what the resolver wrote before it, as a route's 4xx", async () => {
      const key = randomUUID();
      const rejecting = `mutation($label: String!) { recordInTransaction(label: $label, reject: true) { runId } }`;
      const first = await graphql(t.url, rejecting, { label: key }, { key });
      const second = await graphql(t.url, rejecting, { label: key }, { key });
      expect(first.errors?.[0]?.message).toBe(`Rejected ${key} after its write`);
      expect(second.errors).toEqual(first.errors);
      expect(second.extensions?.idempotency?.replayed).toBe(true);
      expect(await t.effects(key)).toBe(1);
    });

    it('runs 20 concurrent duplicates once', async () => {
      const key = randomUUID();
      const replies = await Promise.all(Array.from({ length: 20 }, () => graphql(t.url, mutation, { label: key }, { key })));
      const answered = replies.filter((reply) => reply.data?.recordInTransaction);
      expect(new Set(answered.map((reply) => JSON.stringify(reply.data))).size).toBe(1);
      expect(answered.length).toBeGreaterThan(0);
      expect(await t.effects(key)).toBe(1);
    });
  });
});
