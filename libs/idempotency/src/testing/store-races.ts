import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ClaimOutcome, ClaimRequest } from '../storage/idempotency-store';
import type { ContractContext } from './contract-context';

/** Concurrent claims on one key: exactly one wins, whatever the record held. */
export function describeRaces({ framework: { describe, it }, store, request, claimed, leaseMs: LEASE_MS, dayMs: DAY_MS }: ContractContext): void {
  describe('races', () => {
    const race = async (claim: ClaimRequest, count = 25) => {
      const outcomes = await Promise.all(Array.from({ length: count }, () => store().claim(claim)));
      return outcomes.filter((outcome): outcome is Extract<ClaimOutcome, { status: 'claimed' }> => outcome.status === 'claimed');
    };

    it('gives a new key to exactly one of many concurrent claims', async () => {
      for (let round = 0; round < 5; round++) {
        const claim = request();
        const winners = await race(claim);
        assert.equal(winners.length, 1, `round ${round}: ${winners.length} claims`);
        assert.equal((await store().find(claim.scope, claim.key))?.owner, winners[0].ref.owner);
      }
    });

    it('gives a lapsed lease to exactly one of many concurrent takeovers', async () => {
      const claim = request({ leaseMs: 100 });
      await claimed(claim);
      await sleep(200);
      const winners = await race({ ...claim, leaseMs: LEASE_MS });
      assert.equal(winners.length, 1);
      assert.deepEqual([winners[0].attempt, winners[0].takenOver], [2, true]);
    });

    it('gives an expired record to exactly one of many concurrent claims', async () => {
      const claim = request();
      const { ref } = await claimed(claim);
      await store().complete(ref, { status: 200, headers: [], body: Buffer.alloc(0) }, 100);
      await sleep(200);
      const winners = await race(claim);
      assert.equal(winners.length, 1);
      assert.equal(winners[0].attempt, 1);
    });

    it('lets only one of two racing owners complete', async () => {
      const claim = request({ leaseMs: 100 });
      const first = await claimed(claim);
      await sleep(200);
      const second = await claimed(claim);
      const results = await Promise.all([
        store().complete(first.ref, { status: 200, headers: [], body: Buffer.from('first') }, DAY_MS),
        store().complete(second.ref, { status: 200, headers: [], body: Buffer.from('second') }, DAY_MS),
      ]);
      assert.deepEqual(results, [false, true]);
    });
  });
}
