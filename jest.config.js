/** One Jest run for the unit specs next to the library code and the suites under test/. */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/libs', '<rootDir>/test', '<rootDir>/sample-app'],
  testMatch: ['**/*.spec.ts'],
  transform: { '^.+\\.(t|j|cj|mj)s$': ['@swc/jest'] },
  transformIgnorePatterns: ['/node_modules/(?!.*/node_modules/)(?!(@nestjs|cookie|@electric-sql/pglite|@octokit)/)'],
  moduleNameMapper: {
    '^nestjs-idempotency$': '<rootDir>/libs/idempotency/src/index.ts',
    '^nestjs-idempotency/(testing|terminus)$': '<rootDir>/libs/idempotency/src/$1/index.ts',
    // ESM-only, with an "import" condition alone, which Jest's CommonJS resolver does not match.
    '^@octokit/webhooks-methods$': '<rootDir>/node_modules/@octokit/webhooks-methods/dist-node/index.js',
  },
  globalSetup: '<rootDir>/test/global-setup.ts',
  testTimeout: 60_000,
};
