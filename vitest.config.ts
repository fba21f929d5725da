import { defineConfig } from 'vitest/config';

// Unit and in-process HTTP tests. The real-client suite (vitest.e2e.config.ts) and the
// black-box conformance suite (vitest.conformance.config.ts) have their own configurations.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    exclude: ['test/e2e/**', 'test/conformance/**', '**/node_modules/**'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
