import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { PROJECT_ROOT, spawnServer, type ServerProcess } from '../support/built-server.js';
import { registryS3Env, startS3Server, type S3Server } from '../support/s3.js';

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
 * folder (and, with OCI_CONFORMANCE_STORAGE=s3, its blobs in an s3rver started here), and
 * stops it (by its pid) and removes the folder afterwards.
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
  const storage = process.env.OCI_CONFORMANCE_STORAGE || 'filesystem';
  if (storage !== 'filesystem' && storage !== 's3') throw new Error(`OCI_CONFORMANCE_STORAGE must be filesystem or s3, not ${storage}`);
  const data = await mkdtemp(join(tmpdir(), 'ocireg-conformance-'));
  let server: ServerProcess;
  let s3: S3Server | undefined;
  try {
    if (storage === 's3') {
      // Blobs in an s3rver on a folder inside the data folder; the index stays in the data folder.
      s3 = await startS3Server({ directory: join(data, 's3') });
      console.log(`conformance: our registry keeps its blobs in s3rver at ${s3.endpoint}`);
    }
    server = await spawnServer(
      cli,
      {
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: data,
        REGISTRY_STORAGE_DELETE_ENABLED: String(deletes),
        REGISTRY_LOG_LEVEL: 'warn',
        ...(s3 ? registryS3Env(s3, join(data, 'index.db')) : {}),
      },
      data,
    );
  } catch (err) {
    await s3?.stop();
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
      await s3?.stop();
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
