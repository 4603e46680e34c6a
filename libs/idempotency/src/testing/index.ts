export { testIdempotencyStore, type StoreUnderTest, type TestFramework } from './store-contract';
export { testClaimTransitions } from './claim-table';
