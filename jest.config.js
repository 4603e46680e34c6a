/** One Jest run for the unit specs next to the library code and the suites under test/. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/libs', '<rootDir>/test', '<rootDir>/sample-app'],
  testMatch: ['**/*.spec.ts'],
  transform: { '^.+\\.(t|j|cj|mj)s$': ['@swc/jest'] },
  transformIgnorePatterns: ['/node_modules/(?!.*/node_modules/)(?!(@nestjs|cookie|@electric-sql/pglite)/)'],
  moduleNameMapper: { '^nestjs-idempotency$': '<rootDir>/libs/idempotency/src/index.ts' },
  globalSetup: '<rootDir>/test/global-setup.ts',
  testTimeout: 60_000,
};
