import type { ClaimOutcome, ClaimRequest, IdempotencyStore } from '../storage/idempotency-store';
import type { TestFramework } from './store-contract';

/** What the parts of the contract suite share: the store under test and how they make requests of it. */
export interface ContractContext {
  framework: TestFramework;
  store: () => IdempotencyStore;
  /** A claim on a key of its own, with the suite's lease and a day's TTL. */
  request: (overrides?: Partial<ClaimRequest>) => ClaimRequest;
  /** Claims, and fails the test unless the claim is taken. */
  claimed: (claim: ClaimRequest) => Promise<Extract<ClaimOutcome, { status: 'claimed' }>>;
  leaseMs: number;
  dayMs: number;
}
