import { execFile, execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';
import { freePort, PROJECT_ROOT } from './built-server.js';

// Not imported from ./postgres.js, which loads vitest's test API (this runs in vitest's main process).
// The ProvidedContext member `ociregPostgresUrl` is declared there.
const POSTGRES_URL_VARIABLE = 'OCIREG_TEST_POSTGRES_URL';
const run = promisify(execFile);
const SCRIPT = join(PROJECT_ROOT, 'scripts', 'postgres.sh');
/** initdb plus the script's own 30 s wait for the server, with room to spare. */
const START_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 45_000;
/** A free port can be taken by someone else before the server binds it: try a few. */
const START_ATTEMPTS = 3;

/**
 * Vitest global setup: unless OCIREG_TEST_POSTGRES_URL names a server already, starts a private
 * PostgreSQL (scripts/postgres.sh) in a temporary folder on a free loopback port for the run, and
 * stops it and removes the folder afterwards. Without PostgreSQL's binaries it does nothing and the
 * PostgreSQL suites skip (or fail, with OCIREG_REQUIRE_POSTGRES=1).
 *
 * The URL reaches the test workers both ways: as the variable (forked workers inherit this
 * process's environment) and through `provide` (test/support/postgres.ts reads either).
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | void> {
  const given = process.env[POSTGRES_URL_VARIABLE];
  if (given) {
    project.provide('ociregPostgresUrl', given);
    return;
  }
  project.provide('ociregPostgresUrl', '');
  try {
    await run('bash', [SCRIPT, 'bindir'], { timeout: 10_000 });
  } catch {
    console.log('postgres: no PostgreSQL server binaries found; the PostgreSQL suites will not run');
    return;
  }

  // Short: the server's unix socket path lives in this folder and is limited to ~100 bytes.
  const base = tmpdir().length > 40 ? '/tmp' : tmpdir();
  const dir = await mkdtemp(join(base, 'ocireg-pg-'));
  const stopSync = () => {
    try {
      execFileSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore', timeout: STOP_TIMEOUT_MS });
    } catch {
      // best effort on the way out
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // An interrupted run (Ctrl-C) may exit without the teardown below.
  process.once('exit', stopSync);

  let url: string | undefined;
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS && url === undefined; attempt++) {
    const port = await freePort();
    try {
      const { stdout } = await run('bash', [SCRIPT, 'start', dir, String(port)], { timeout: START_TIMEOUT_MS });
      const match = /^export OCIREG_TEST_POSTGRES_URL=(\S+)$/m.exec(stdout);
      if (!match) throw new Error(`unexpected output of scripts/postgres.sh start: ${stdout}`);
      url = match[1];
    } catch (err) {
      lastError = err;
      await run('bash', [SCRIPT, 'stop', dir], { timeout: STOP_TIMEOUT_MS }).catch(() => undefined);
    }
  }
  if (url === undefined) {
    process.removeListener('exit', stopSync);
    stopSync();
    const detail = lastError as { stderr?: string; message?: string } | undefined;
    throw new Error(`could not start PostgreSQL for the tests: ${detail?.stderr || detail?.message || String(lastError)}`);
  }
  process.env[POSTGRES_URL_VARIABLE] = url;
  project.provide('ociregPostgresUrl', url);
  console.log(`postgres: started a test server at ${url} (data in ${dir})`);

  return async () => {
    process.removeListener('exit', stopSync);
    delete process.env[POSTGRES_URL_VARIABLE];
    try {
      await run('bash', [SCRIPT, 'stop', dir], { timeout: STOP_TIMEOUT_MS });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}
