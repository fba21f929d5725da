import { defineConfig } from 'vitest/config';

// The OCI distribution conformance suite: black-box HTTP against CONFORMANCE_URL.
export default defineConfig({
  test: {
    include: ['test/conformance/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
  },
});
