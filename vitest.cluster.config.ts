import { defineConfig } from 'vitest/config';

// The three-node cluster tests (test/cluster/): real `ocireg serve` processes from dist/ on one
// s3rver bucket and one PostgreSQL database, behind haproxy. `npm run build` first. PostgreSQL
// comes from OCIREG_TEST_POSTGRES_URL, or postgres-global.ts starts a private one.
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.test.ts'],
    globalSetup: ['test/support/postgres-global.ts'],
    testTimeout: 180_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    pool: 'forks',
    // One file at a time: each runs its own three nodes, haproxy and s3rver.
    fileParallelism: false,
    // s3rver (in the test process) makes ListObjectsV2 continuation tokens with DES, which Node's
    // OpenSSL 3 offers only with its legacy provider; reindex pages through the bucket.
    execArgv: ['--openssl-legacy-provider'],
  },
});
