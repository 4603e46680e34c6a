import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClaimOutcome, ClaimRequest, IdempotencyStore, StoredResponse } from '../storage/idempotency-store';
import { testClaimTransitions } from './claim-table';
import { type ContractContext, jestOrVitestGlobals, type StoreUnderTest, type TestFramework } from './contract-context';
import { describeRaces } from './store-races';
import { describeTransactionalClaims } from './transactional-contract';

export type { StoreUnderTest, TestFramework } from './contract-context';

/** Short enough to wait out in a test, long enough that a loaded machine does not run it out by accident. */
const LEASE_MS = 400;
const DAY_MS = 86_400_000;

/**
 * Runs the guarantees of `IdempotencyStore` (and of `TransactionalIdempotencyStore`, where the store has
 * `claimInTransaction`) against a store: every row of `CLAIM_TRANSITIONS`, claims, replays, fingerprints,
 * fencing of complete/release/renew on the owner token, lease takeover, expiry, purge, and races of
 * concurrent claims on one key. Every test uses keys of its own. Timing tests wait out leases and TTLs
 * of a few hundred milliseconds.
 *
 * @example
 * // my-store.contract.spec.ts
 * import { testIdempotencyStore } from 'nestjs-idempotency/testing';
 * testIdempotencyStore('MyStore', async () => {
 *   const store = new MyStore(await connect());
 *   return { store, close: () => store.disconnect() };
 * });
 */
export function testIdempotencyStore(name: string, setup: () => Promise<StoreUnderTest>, framework: TestFramework = jestOrVitestGlobals()): void {
  const { describe, it, beforeAll, afterAll } = framework;
  let subject: StoreUnderTest;
  let store: IdempotencyStore;
  const request = (overrides: Partial<ClaimRequest> = {}): ClaimRequest => ({
    scope: 'contract',
    key: randomUUID(),
    fingerprint: 'fp-1',
    leaseMs: LEASE_MS,
    ttlMs: DAY_MS,
    ...overrides,
  });
  const claimed = async (claim: ClaimRequest) => {
    const outcome = await store.claim(claim);
    assert.equal(outcome.status, 'claimed', `expected a claim, got ${JSON.stringify(outcome)}`);
    return outcome;
  };
  const context: ContractContext = { framework, store: () => store, request, claimed, leaseMs: LEASE_MS, dayMs: DAY_MS };

  describe(`IdempotencyStore contract: ${name}`, () => {
    beforeAll(async () => {
      subject = await setup();
      store = subject.store;
    }, 60_000);
    afterAll(async () => {
      await subject?.close?.();
    }, 60_000);

    describe('claim', () => {
      it('claims a new key, and a duplicate finds it in flight until the lease runs out', async () => {
        const claim = request();
        const first = await claimed(claim);
        assert.deepEqual([first.attempt, first.takenOver, first.ref.scope, first.ref.key], [1, false, claim.scope, claim.key]);
        assert.equal(typeof first.ref.owner, 'string');
        const second = await store.claim(claim);
        assert.equal(second.status, 'in-flight');
        const retryAfterMs = second.retryAfterMs;
        assert.ok(retryAfterMs > 0 && retryAfterMs <= LEASE_MS, `retryAfterMs ${retryAfterMs}`);
      });

      it('replays a completed record byte for byte, with its time left', async () => {
        const claim = request({ ttlMs: 60_000 });
        const { ref } = await claimed(claim);
        const response: StoredResponse = {
          status: 201,
          headers: [
            ['content-type', 'application/octet-stream'],
            ['location', '/orders/1'],
          ],
          body: Buffer.from([0, 1, 2, 255, 0x7b, 0, 10]),
        };
        assert.equal(await store.complete(ref, response, 60_000), true);
        for (const again of [claim, { ...claim, fingerprint: null }]) {
          const outcome = await store.claim(again);
          assert.equal(outcome.status, 'completed');
          const replay = outcome;
          assert.equal(replay.response.status, 201);
          assert.deepEqual(replay.response.headers, response.headers);
          assert.ok(replay.response.body.equals(response.body));
          if (replay.record) {
            assert.equal(replay.record.fingerprint, 'fp-1');
            assert.ok(replay.record.expiresInMs > 50_000 && replay.record.expiresInMs <= 60_000, `expiresInMs ${replay.record.expiresInMs}`);
          }
        }
      });

      it('refuses another fingerprint on a live record, completed or in flight; null matches any', async () => {
        const inFlight = request();
        await claimed(inFlight);
        assert.equal((await store.claim({ ...inFlight, fingerprint: 'fp-2' })).status, 'fingerprint-mismatch');
        assert.equal((await store.claim({ ...inFlight, fingerprint: null })).status, 'in-flight');

        const done = request({ fingerprint: null });
        const { ref } = await claimed(done);
        await store.complete(ref, { status: 200, headers: [], body: Buffer.from('ok') }, DAY_MS);
        assert.equal((await store.claim({ ...done, fingerprint: 'anything' })).status, 'completed');

        const fingerprinted = request();
        const held = await claimed(fingerprinted);
        await store.complete(held.ref, { status: 200, headers: [], body: Buffer.alloc(0) }, DAY_MS);
        assert.equal((await store.claim({ ...fingerprinted, fingerprint: 'fp-2' })).status, 'fingerprint-mismatch');
        assert.equal((await store.peek({ ...fingerprinted, fingerprint: 'fp-2' }))?.status, 'fingerprint-mismatch');
      });

      it('keeps scopes and keys apart, whatever characters they hold', async () => {
        const id = randomUUID();
        const pairs: Array<[string, string]> = [
          [`a:${id}`, 'b'],
          ['a', `${id}:b`],
          [`a%3A${id}`, 'b'],
          [`ä ${id}`, 'ß/ü?x=1'],
        ];
        const refs = [];
        for (const [scope, key] of pairs) refs.push((await claimed(request({ scope, key }))).ref);
        for (const [index, ref] of refs.entries()) {
          assert.equal(await store.complete(ref, { status: 200, headers: [], body: Buffer.from(String(index)) }, DAY_MS), true);
        }
        for (const [index, [scope, key]] of pairs.entries()) {
          const outcome = (await store.claim(request({ scope, key }))) as Extract<ClaimOutcome, { status: 'completed' }>;
          assert.equal(outcome.response.body.toString(), String(index));
          assert.equal((await store.find(scope, key))?.key, key);
        }
      });

      it('never lets a record expire before its lease, whatever the TTL, renewed or not', async () => {
        const claim = request({ ttlMs: 50, leaseMs: 1_000 });
        const { ref } = await claimed(claim);
        await sleep(150);
        assert.equal((await store.claim(claim)).status, 'in-flight');
        assert.equal((await store.find(claim.scope, claim.key))?.state, 'in_flight');
        // Renewed past its first lease (and its TTL): the record lives as long as the new lease.
        assert.equal(await store.renew(ref, 2_000), true);
        await sleep(1_100);
        assert.equal((await store.claim(claim)).status, 'in-flight');
        assert.equal((await store.find(claim.scope, claim.key))?.owner, ref.owner);
      });
    });

    testClaimTransitions(() => store, framework);

    describe('fencing on the owner token', () => {
      it('completes, releases and renews only with the owner of the claim', async () => {
        const claim = request();
        const { ref } = await claimed(claim);
        const stranger = { ...ref, owner: randomUUID() };
        const response = { status: 200, headers: [], body: Buffer.from('x') };
        assert.equal(await store.complete(stranger, response, DAY_MS), false);
        assert.equal(await store.release(stranger), false);
        assert.equal(await store.renew(stranger, LEASE_MS), false);
        assert.equal((await store.find(claim.scope, claim.key))?.owner, ref.owner);
        assert.equal(await store.complete(ref, response, DAY_MS), true);
        // A completed record is immutable until it expires.
        assert.equal(await store.complete(ref, { ...response, body: Buffer.from('y') }, DAY_MS), false);
        assert.equal(await store.release(ref), false);
        assert.equal(await store.renew(ref, LEASE_MS), false);
        const replay = (await store.claim(claim)) as Extract<ClaimOutcome, { status: 'completed' }>;
        assert.equal(replay.response.body.toString(), 'x');
      });

      it('release deletes the in-flight record, so that the next attempt runs again', async () => {
        const claim = request();
        const { ref } = await claimed(claim);
        assert.equal(await store.release(ref), true);
        assert.equal(await store.find(claim.scope, claim.key), undefined);
        const again = await claimed(claim);
        assert.equal(again.attempt, 1);
        assert.notEqual(again.ref.owner, ref.owner);
      });
    });

    describe('leases', () => {
      it('hands a claim whose lease ran out to the next attempt, and fences the first one', async () => {
        const claim = request({ leaseMs: 150 });
        const first = await claimed(claim);
        await sleep(250);
        const second = await claimed(claim);
        assert.deepEqual([second.attempt, second.takenOver], [2, true]);
        assert.notEqual(second.ref.owner, first.ref.owner);
        const late = { status: 500, headers: [], body: Buffer.from('late') };
        assert.equal(await store.complete(first.ref, late, DAY_MS), false);
        assert.equal(await store.release(first.ref), false);
        assert.equal(await store.renew(first.ref, 150), false);
        assert.equal(await store.complete(second.ref, { status: 200, headers: [], body: Buffer.from('second') }, DAY_MS), true);
        const record = await store.find(claim.scope, claim.key);
        assert.equal(record?.attempts, 2);
        assert.equal(record?.response?.body.toString(), 'second');
      });

      it('renewal keeps a live claim from being taken over', async () => {
        // The renewals span more than one lease; each leaves a whole second for the next step on a loaded machine.
        const claim = request({ leaseMs: 1_000 });
        const { ref } = await claimed(claim);
        for (let i = 0; i < 3; i++) {
          await sleep(400);
          assert.equal(await store.renew(ref, 1_000), true);
        }
        assert.equal((await store.claim(claim)).status, 'in-flight');
        const record = await store.find(claim.scope, claim.key);
        assert.ok(record?.leaseExpiresAt && record.leaseExpiresAt.getTime() > Date.now(), 'the lease was extended');
      });
    });

    describe('expiry and purge', () => {
      it('an expired completed record counts as absent: find misses it and a claim starts over', async () => {
        const claim = request();
        const { ref } = await claimed(claim);
        await store.complete(ref, { status: 200, headers: [], body: Buffer.from('old') }, 1_000);
        assert.equal((await store.find(claim.scope, claim.key))?.state, 'completed');
        await sleep(1_200);
        assert.equal(await store.find(claim.scope, claim.key), undefined);
        assert.equal(await store.peek(claim), undefined);
        const again = await claimed({ ...claim, fingerprint: 'fp-new' });
        assert.deepEqual([again.attempt, again.takenOver], [1, false]);
      });

      it('find shows the state, attempts, owner, times and stored answer of a record', async () => {
        const claim = request();
        const before = Date.now();
        const { ref } = await claimed(claim);
        const inFlight = await store.find(claim.scope, claim.key);
        assert.equal(inFlight?.state, 'in_flight');
        assert.equal(inFlight?.owner, ref.owner);
        assert.equal(inFlight?.fingerprint, 'fp-1');
        assert.equal(inFlight?.response, null);
        assert.equal(inFlight?.completedAt, null);
        // Store clocks may differ from this process' by a little.
        assert.ok(Math.abs(inFlight.createdAt.getTime() - before) < 5_000);
        assert.ok(inFlight.leaseExpiresAt && inFlight.leaseExpiresAt > inFlight.createdAt);
        await store.complete(ref, { status: 202, headers: [['etag', '"1"']], body: Buffer.from('{}') }, DAY_MS);
        const done = await store.find(claim.scope, claim.key);
        assert.equal(done?.state, 'completed');
        assert.equal(done?.attempts, 1);
        assert.ok(done?.completedAt instanceof Date);
        assert.ok(done.expiresAt.getTime() > Date.now() + DAY_MS - 60_000);
        assert.deepEqual(done.response?.headers, [['etag', '"1"']]);
        assert.equal(await store.find(claim.scope, randomUUID()), undefined);
      });

      it('purges expired records in batches and keeps live ones, in flight or completed', async () => {
        const scope = `purge-${randomUUID()}`;
        for (let i = 0; i < 5; i++) {
          const { ref } = await claimed(request({ scope, key: `expired-${i}` }));
          await store.complete(ref, { status: 200, headers: [], body: Buffer.from('x') }, 100);
        }
        const lapsed = await claimed(request({ scope, key: 'lapsed', leaseMs: 100, ttlMs: 100 }));
        const live = await claimed(request({ scope, key: 'live' }));
        await store.complete(live.ref, { status: 200, headers: [], body: Buffer.from('live') }, DAY_MS);
        await claimed(request({ scope, key: 'running' }));
        await sleep(250);
        const before = await subject.countRecords?.();
        let purged = 0;
        for (let deleted = -1; deleted !== 0;) {
          deleted = await store.purgeExpired(2);
          assert.ok(deleted <= 2, `a batch of 2 deleted ${deleted}`);
          purged += deleted;
        }
        if (before !== undefined && subject.countRecords) {
          assert.ok(purged >= 6, `purged ${purged}`);
          assert.equal(await subject.countRecords(), before - purged);
        }
        assert.equal(await store.find(scope, 'expired-0'), undefined);
        assert.equal(await store.renew(lapsed.ref, 100), false, 'a purged claim cannot be renewed');
        assert.equal((await store.find(scope, 'live'))?.state, 'completed');
        assert.equal((await store.find(scope, 'running'))?.state, 'in_flight');
      });
    });

    describeRaces(context);
    describeTransactionalClaims(context);
  });
}
