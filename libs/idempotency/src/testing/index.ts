export { testIdempotencyStore, type StoreUnderTest, type TestFramework } from './store-contract';
export { testClaimTransitions } from './claim-table';
export { CLAIM_TRANSITIONS, decide, fingerprintsDiffer, type ClaimDecision, type ClaimedRecord, type ClaimTransition } from '../claim/claim-state';
// The whole store contract, for implementations of `IdempotencyStore` (the root export has its main types).
export type {
  ClaimOutcome,
  ClaimRef,
  ClaimRequest,
  IdempotencyRecordView,
  RecordState,
  TransactionalClaim,
  TransactionalClaimOutcome,
  VersionOutcome,
} from '../storage/idempotency-store';
