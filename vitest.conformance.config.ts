import { defineConfig } from 'vitest/config';

// The black-box OCI Distribution conformance suite. It talks HTTP to a registry whose URL
// comes from OCI_CONFORMANCE_URL (set by scripts/conformance.mjs), or, without one, to our
// built registry that test/conformance/global-setup.ts starts on a free port.
export default defineConfig({
  test: {
    include: ['test/conformance/**/*.test.ts'],
    globalSetup: ['test/conformance/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    teardownTimeout: 30_000,
    pool: 'forks',
    // Files use separate repositories, but a foreign registry may be slow or rate-limited:
    // one file at a time keeps the load small and the output readable.
    fileParallelism: false,
  },
});
