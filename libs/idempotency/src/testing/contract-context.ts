import type { ClaimOutcome, ClaimRequest, IdempotencyStore } from '../storage/idempotency-store';

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

/** A store under test, fresh for the suite (its own schema, prefix or database). */
export interface StoreUnderTest {
  store: IdempotencyStore;
  /**
   * How many records the store holds, expired ones not yet purged included; lets the suite check that a
   * purge deleted what it says. Leave it out where expired records cannot be seen (Redis drops them itself).
   */
  countRecords?(): Promise<number>;
  /** Closes what the factory opened. */
  close?(): Promise<void>;
}

/** The test functions the suite is written with; Jest's and Vitest's globals fit. */
export interface TestFramework {
  describe: (name: string, body: () => void) => void;
  it: (name: string, body: () => Promise<void>, timeoutMs?: number) => void;
  beforeAll: (body: () => Promise<void>, timeoutMs?: number) => void;
  afterAll: (body: () => Promise<void>, timeoutMs?: number) => void;
}

/** Jest's or Vitest's globals; the package is built without their types, so they are asserted here. */
export function jestOrVitestGlobals(): TestFramework {
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- needed where jest's types are absent (the package build)
  return globalThis as unknown as TestFramework;
}
