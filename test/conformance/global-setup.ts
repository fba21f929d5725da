import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { PROJECT_ROOT, spawnServer, type ServerProcess } from '../support/built-server.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Base URL of the registry under test, without a trailing slash. */
    conformanceUrl: string;
    /** Repository prefix for this run; each test file works under its own sub-repository. */
    conformanceNamespace: string;
    /** Whether deletes are expected to work (else the spec's 400/405 answers are checked). */
    conformanceDeletes: boolean;
    /** Whether the target is our own registry started here. */
    conformanceOwn: boolean;
  }
}

/**
 * With OCI_CONFORMANCE_URL set, tests that registry. Otherwise starts our built registry
 * (dist/cli.js, built by `npm run conformance`) on a free 127.0.0.1 port with a fresh data
 * folder, and stops it (by its pid) and removes the folder afterwards.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const namespace = (process.env.OCI_CONFORMANCE_NAMESPACE ?? `conformance/${randomBytes(6).toString('hex')}`).replace(/\/+$/, '');
  const deletes = parseBoolean(process.env.OCI_CONFORMANCE_DELETES, true);
  project.provide('conformanceNamespace', namespace);
  project.provide('conformanceDeletes', deletes);

  const given = process.env.OCI_CONFORMANCE_URL;
  if (given) {
    project.provide('conformanceUrl', given.replace(/\/+$/, ''));
    project.provide('conformanceOwn', false);
    return async () => {};
  }

  const cli = join(PROJECT_ROOT, 'dist', 'cli.js');
  try {
    await access(cli);
  } catch {
    throw new Error(`${cli} is missing: run \`npm run conformance\` (it builds first) or \`npm run build\``);
  }
  const data = await mkdtemp(join(tmpdir(), 'ocireg-conformance-'));
  let server: ServerProcess;
  try {
    server = await spawnServer(
      cli,
      {
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: data,
        REGISTRY_STORAGE_DELETE_ENABLED: String(deletes),
        REGISTRY_LOG_LEVEL: 'warn',
      },
      data,
    );
  } catch (err) {
    await rm(data, { recursive: true, force: true });
    throw err;
  }
  // An interrupted run (Ctrl-C) exits without calling the teardown below: spawnServer kills the
  // registry on the way out; this removes its folder.
  const lastChance = () => rmSync(data, { recursive: true, force: true });
  process.once('exit', lastChance);
  project.provide('conformanceUrl', server.url);
  project.provide('conformanceOwn', true);
  return async () => {
    process.removeListener('exit', lastChance);
    try {
      await server.stop(10_000);
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  };
}

function parseBoolean(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new Error(`expected true or false, got ${JSON.stringify(value)}`);
}
