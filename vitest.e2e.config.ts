import { defineConfig } from 'vitest/config';

// End-to-end tests: real clients (docker, skopeo, podman, buildah) against the built registry.
// `npm run test:e2e` builds dist/ first; scripts/install-e2e-deps.sh installs the clients.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    globalSetup: ['test/e2e/global-setup.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // One file at a time: the clients share one dockerd and the machine has two cores.
    fileParallelism: false,
  },
});
