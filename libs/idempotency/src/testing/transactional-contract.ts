import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { isTransactional, type TransactionalIdempotencyStore } from '../storage/idempotency-store';
import type { ContractContext } from './contract-context';

/** Claims held in a transaction (`TransactionalIdempotencyStore`); skipped for stores that do not declare them. */
export function describeTransactionalClaims({ framework: { describe, it }, store, request, dayMs: DAY_MS }: ContractContext): void {
  describe('transactional claims (stores that have them)', () => {
    const transactional = (): Partial<TransactionalIdempotencyStore> => {
      const subject = store();
      return isTransactional(subject) ? subject : {};
    };

    it('holds the claim in a transaction: a rollback leaves nothing, a commit stores the answer', async () => {
      const tx = transactional();
      if (typeof tx.claimInTransaction !== 'function') return;
      const claim = request();
      const first = await tx.claimInTransaction(claim, 2_000, 10_000);
      assert.equal(first.status, 'claimed');
      if (first.status !== 'claimed') return;
      await first.claim.rollback();
      assert.equal(await store().find(claim.scope, claim.key), undefined);
      const second = await tx.claimInTransaction(claim, 2_000, 10_000);
      if (second.status !== 'claimed') assert.fail(`expected a claim, got ${second.status}`);
      await second.claim.complete({ status: 200, headers: [], body: Buffer.from('tx') }, DAY_MS);
      const replay = await tx.claimInTransaction(claim, 2_000, 10_000);
      assert.equal(replay.status, 'completed');
    });

    it('makes a concurrent transactional claim wait for the first, then answers it with the stored response', async () => {
      const tx = transactional();
      if (typeof tx.claimInTransaction !== 'function') return;
      const claim = request();
      const first = await tx.claimInTransaction(claim, 2_000, 10_000);
      if (first.status !== 'claimed') assert.fail(`expected a claim, got ${first.status}`);
      const waiting = tx.claimInTransaction(claim, 5_000, 10_000);
      await sleep(200);
      await first.claim.complete({ status: 200, headers: [], body: Buffer.from('first') }, DAY_MS);
      const second = await waiting;
      assert.equal(second.status, 'completed');
    });

    it('gives up a wait for a held claim after its lock timeout, as in flight', async () => {
      const tx = transactional();
      if (typeof tx.claimInTransaction !== 'function') return;
      const claim = request();
      const first = await tx.claimInTransaction(claim, 2_000, 10_000);
      if (first.status !== 'claimed') assert.fail(`expected a claim, got ${first.status}`);
      try {
        const second = await tx.claimInTransaction(claim, 200, 10_000);
        assert.equal(second.status, 'in-flight');
      } finally {
        await first.claim.rollback();
      }
    });
  });
}
