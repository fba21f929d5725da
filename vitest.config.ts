import { defineConfig } from 'vitest/config';

// Unit and in-process HTTP tests. The real-client suite (vitest.e2e.config.ts) and the
// black-box conformance suite (vitest.conformance.config.ts) have their own configurations.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/e2e/**', 'test/conformance/**', 'test/cluster/**', '**/node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // A private PostgreSQL for the index suites over PostgreSQL, unless OCIREG_TEST_POSTGRES_URL names one.
    globalSetup: ['test/support/postgres-global.ts'],
    // s3rver (the S3 server of the storage tests) makes ListObjectsV2 continuation
    // tokens with DES, which Node's OpenSSL 3 offers only with its legacy provider.
    execArgv: ['--openssl-legacy-provider'],
  },
});
