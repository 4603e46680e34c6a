import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLAIM_TRANSITIONS, type ClaimTransition, type FoundRecord, type RequestFingerprint } from '../claim/claim-state';
import type { ClaimOutcome, ClaimRequest, IdempotencyStore } from '../storage/idempotency-store';
import { jestOrVitestGlobals, type TestFramework } from './contract-context';

/** A lease or TTL that a row waits out; long enough that a loaded machine does not end one too soon by accident. */
const SHORT_MS = 200;
/** A lease or TTL that must outlast the suite. */
const LONG_MS = 600_000;

const FINGERPRINTS: Record<RequestFingerprint, string | null> = { same: 'fp-1', other: 'fp-2', none: null };

/** One row of the table, once its claim is made. */
interface RowResult {
  /** The attempt of the claim that set the record up; 0 when there is none. */
  previousAttempt: number;
  outcome: ClaimOutcome;
}

/**
 * Holds the store to every row of `CLAIM_TRANSITIONS` (`claim/claim-state.ts`): sets up the record each
 * row finds through the public store API only, claims it, and checks the outcome and the attempt. All
 * rows are set up first and wait out their short leases and TTLs together, so the suite waits once.
 * `testIdempotencyStore` runs it; call it inside a suite of your own with the store it has opened.
 *
 * @example
 * describe('MyStore', () => {
 *   let store: MyStore;
 *   beforeAll(async () => (store = new MyStore(await connect())));
 *   testClaimTransitions(() => store);
 * });
 */
export function testClaimTransitions(store: () => IdempotencyStore, framework: TestFramework = jestOrVitestGlobals()): void {
  const { describe, it, beforeAll } = framework;
  const results = new Map<ClaimTransition, RowResult>();

  describe('claim transitions (CLAIM_TRANSITIONS)', () => {
    beforeAll(async () => {
      const scope = `claim-table-${randomUUID()}`;
      const rows = await Promise.all(
        CLAIM_TRANSITIONS.map(async (row) => {
          const key = randomUUID();
          const previousAttempt = await setUp(store(), { scope, key, fingerprint: 'fp-1', leaseMs: LONG_MS, ttlMs: LONG_MS }, row.found);
          return { row, key, previousAttempt };
        }),
      );
      // Past every short lease and TTL, with room for a store clock that reads a little behind this one.
      await sleep(SHORT_MS + 200);
      await Promise.all(
        rows.map(async ({ row, key, previousAttempt }) => {
          const claim: ClaimRequest = { scope, key, fingerprint: FINGERPRINTS[row.fingerprint], leaseMs: LONG_MS, ttlMs: LONG_MS };
          results.set(row, { previousAttempt, outcome: await store().claim(claim) });
        }),
      );
    }, 60_000);

    for (const row of CLAIM_TRANSITIONS) {
      it(`${row.found} record, ${row.fingerprint} fingerprint: ${row.decision}`, () => {
        const result = results.get(row);
        assert.ok(result, 'the rows were not claimed');
        const { outcome, previousAttempt } = result;
        assert.equal(outcome.status, row.outcome, `expected ${row.outcome}, got ${JSON.stringify(outcome)}`);
        if (outcome.status === 'claimed') {
          assert.equal(outcome.attempt, row.attempt === 'next' ? previousAttempt + 1 : 1, 'attempt');
          assert.equal(outcome.takenOver, row.decision === 'take-over', 'takenOver');
        }
        // The claims were made, and awaited, before every row's check.
        return Promise.resolve();
      });
    }
  });
}

/**
 * Makes the record a row finds, with fingerprint 'fp-1'; returns the attempt of the claim that made it
 * (0 for none). Short leases and TTLs are left running: the caller waits them out.
 */
async function setUp(store: IdempotencyStore, claim: ClaimRequest, found: FoundRecord): Promise<number> {
  if (found === 'absent') return 0;
  const outcome = await store.claim(found === 'lease-expired' ? { ...claim, leaseMs: SHORT_MS } : claim);
  assert.equal(outcome.status, 'claimed', `setting up a ${found} record: ${JSON.stringify(outcome)}`);
  if (outcome.status !== 'claimed') return 0;
  if (found === 'completed' || found === 'expired') {
    const response = { status: 200, headers: [], body: Buffer.from(found) };
    const done = await store.complete(outcome.ref, response, found === 'expired' ? SHORT_MS : LONG_MS);
    assert.equal(done, true, `setting up a ${found} record: the completion was refused`);
  }
  return outcome.attempt;
}
