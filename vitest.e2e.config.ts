import { defineConfig } from 'vitest/config';

// End-to-end tests with real clients (docker, skopeo, podman, buildah) against the built registry.
export default defineConfig({
  test: {
    include: ['test/e2e/**/*.test.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
    pool: 'forks',
    // One file at a time: the clients share one dockerd and the machine has two cores.
    fileParallelism: false,
  },
});
