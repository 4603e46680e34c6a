export { testIdempotencyStore, type StoreUnderTest, type TestFramework } from './store-contract';
