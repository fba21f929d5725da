/**
 * What the maintenance commands (gc, verify, du, lifecycle...) share: their output, and opening
 * the configuration, the store and the index with one line on stderr (and exit code 1) for what
 * is the user's to fix, rather than a stack trace.
 */
import { ConfigError, loadConfig, type Config } from './config/config.js';
import type { Index } from './index/contract.js';
import { IndexOpenError, openIndex } from './index/open-index.js';
import type { BlobStore } from './storage/blob-store.js';
import { openStore } from './storage/open-store.js';

export interface Output {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const processOutput: Output = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

/** The configuration (the file at `path`, else the default or REGISTRY_CONFIGURATION_PATH); undefined, said on stderr, if it is wrong. */
export function loadCommandConfig(path: string | undefined, out: Output): Config | undefined {
  try {
    return loadConfig(path ? { path } : {});
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    out.stderr(`${err.message}\n`);
    return undefined;
  }
}

/** The index; undefined, said on stderr, if it cannot be opened. */
export async function openCommandIndex(config: Config, out: Output): Promise<Index | undefined> {
  try {
    return await openIndex(config.index);
  } catch (err) {
    if (!(err instanceof IndexOpenError)) throw err;
    out.stderr(`${err.message}\n`);
    return undefined;
  }
}

/** The store and the index; undefined (the store closed again), said on stderr, if the index cannot be opened. */
export async function openCommandStorage(config: Config, out: Output): Promise<{ store: BlobStore; index: Index } | undefined> {
  const store = await openStore(config);
  let index: Index | undefined;
  try {
    index = await openCommandIndex(config, out);
  } finally {
    if (!index) await store.close?.();
  }
  return index ? { store, index } : undefined;
}
