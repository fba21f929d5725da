// What the configuration tests share: a fresh folder per test as the working directory, and
// loading against it with an empty environment (the real process.env is never read).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import { ConfigError, loadConfig, type Config, type LoadOptions } from '../../src/config/config.js';

export interface ConfigFixture {
  /** This test's folder. */
  readonly dir: string;
  /** Loads with cwd = the folder and an empty environment unless one is given. */
  load(options?: LoadOptions): Config;
  /** Asserts that loading fails with a ConfigError, and returns its message. */
  configError(options: LoadOptions): string;
  /** Writes a file in the folder and returns its path. */
  configFile(text: string, name?: string): Promise<string>;
}

export function useConfigDir(): ConfigFixture {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ocireg-config-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const load = (options: LoadOptions = {}) => loadConfig({ env: {}, cwd: dir, ...options });
  return {
    get dir() {
      return dir;
    },
    load,
    configError(options) {
      try {
        load(options);
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        return (err as Error).message;
      }
      throw new Error('expected a ConfigError, but the configuration loaded');
    },
    async configFile(text, name = 'config.yml') {
      const path = join(dir, name);
      await writeFile(path, text);
      return path;
    },
  };
}
