// Starts what the end-to-end suite drives, and stops it (by pid) afterwards:
// - the built registry on a free loopback port with a fresh data folder, or, with
//   OCIREG_E2E_STORAGE=s3, on an in-process s3rver (its index still in the data folder);
// - with OCIREG_E2E_CLUSTER=1, three nodes on s3rver and PostgreSQL behind haproxy instead
//   (test/support/cluster.ts), all appending to the one registry log;
// - a private dockerd, unless DOCKER_HOST already names a running one (CI starts one with
//   scripts/dockerd.sh; so can a developer).
// It installs nothing: a missing client fails the run with a pointer to scripts/install-e2e-deps.sh.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { PROJECT_ROOT } from '../support/built-server.js';
import { startCluster } from '../support/cluster.js';
import startPostgres from '../support/postgres-global.js';
import { registryS3Env, startS3Server } from '../support/s3.js';
import { BUILT_CLI, run, startRegistryProcess, tempFolder } from './harness.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** `http://127.0.0.1:<port>` of the shared registry. */
    registryUrl: string;
    /** `127.0.0.1:<port>`, for image references. */
    registryHost: string;
    /** The shared registry's log file (pino JSON lines; in cluster mode every node's, each line with its `node`). */
    registryLog: string;
    /** The run's own folder (removed at the end, also after an interrupt): test files make theirs inside. */
    e2eWork: string;
    /** `unix:///.../docker.sock` of the daemon the docker cases use. */
    dockerHost: string;
    /** The shared registry's blob store: filesystem, or s3 (OCIREG_E2E_STORAGE=s3). */
    registryStorage: 'filesystem' | 's3';
  }
}

const CLIENTS = ['docker', 'dockerd', 'skopeo', 'podman', 'buildah', 'umoci'];

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const missing: string[] = [];
  for (const client of CLIENTS) {
    const found = await run('sh', ['-c', `command -v ${client}`], { allowFailure: true, timeoutMs: 5_000 });
    if (found.code !== 0) missing.push(client);
  }
  if (missing.length > 0) {
    throw new Error(`the end-to-end suite needs ${missing.join(', ')}: run scripts/install-e2e-deps.sh (as root) first`);
  }
  for (const client of ['docker', 'skopeo', 'podman', 'buildah', 'umoci']) {
    const version = await run(client, ['--version'], { allowFailure: true, timeoutMs: 10_000 });
    console.log(`e2e: ${(version.stdout || version.stderr).trim().split('\n')[0]}`);
  }
  const clustered = /^(1|true|yes)$/i.test(process.env.OCIREG_E2E_CLUSTER ?? '');
  // A cluster keeps its blobs in S3 whatever OCIREG_E2E_STORAGE says.
  const storage = clustered ? 's3' : process.env.OCIREG_E2E_STORAGE || 'filesystem';
  if (storage !== 'filesystem' && storage !== 's3') throw new Error(`OCIREG_E2E_STORAGE must be filesystem or s3, not ${storage}`);
  if (!existsSync(BUILT_CLI)) throw new Error(`${BUILT_CLI} is missing: run the suite with npm run test:e2e, which builds it`);

  const cleanups: Array<() => Promise<void>> = [];
  // An interrupted run (Ctrl-C) exits without calling the teardown: this last-chance handler
  // stops our dockerd (it runs in its own session, so the signal never reached it) and removes
  // our folders, synchronously.
  const onExit: Array<() => void> = [];
  const lastChance = () => {
    for (const undo of onExit.reverse()) {
      try {
        undo();
      } catch {
        // best effort while exiting
      }
    }
  };
  process.once('exit', lastChance);
  const teardown = async () => {
    process.removeListener('exit', lastChance);
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((err: unknown) => console.error('e2e teardown:', err));
    }
  };

  try {
    // dockerd: reuse the one named by DOCKER_HOST, or start our own and stop it at the end.
    let dockerHost = process.env.DOCKER_HOST ?? '';
    if (dockerHost) {
      await run('docker', ['-H', dockerHost, 'version'], { timeoutMs: 20_000 }).catch((err: Error) => {
        throw new Error(`DOCKER_HOST=${dockerHost} does not answer: ${err.message}`);
      });
    } else {
      // A short path: the daemon's unix socket path must stay under ~100 bytes.
      const dir = await mkdtemp('/tmp/ocireg-dk-');
      const script = join(PROJECT_ROOT, 'scripts', 'dockerd.sh');
      onExit.push(() => {
        spawnSync('bash', [script, 'stop', dir], { stdio: 'ignore', timeout: 90_000 });
        rmSync(dir, { recursive: true, force: true });
      });
      cleanups.push(async () => {
        await run('bash', [script, 'stop', dir], { timeoutMs: 90_000, allowFailure: true });
        await rm(dir, { recursive: true, force: true });
      });
      const started = await run('bash', [script, 'start', dir], { timeoutMs: 120_000 });
      const m = /DOCKER_HOST=(\S+)/.exec(started.stdout);
      if (!m) throw new Error(`scripts/dockerd.sh printed no DOCKER_HOST:\n${started.stdout}${started.stderr}`);
      dockerHost = m[1]!;
    }

    const work = await tempFolder('ocireg-e2e-');
    onExit.push(() => rmSync(work, { recursive: true, force: true }));
    const dataDir = join(work, 'data');
    await mkdir(dataDir);
    const logFile = join(work, 'registry.log');
    if (clustered) {
      const registry = await startClusterRegistry(project, work, logFile, cleanups);
      project.provide('registryUrl', registry.url);
      project.provide('registryHost', registry.host);
      project.provide('registryLog', logFile);
      project.provide('dockerHost', dockerHost);
      project.provide('e2eWork', work);
      project.provide('registryStorage', storage);
      return teardown;
    }
    let env: Record<string, string> = {};
    if (storage === 's3') {
      // Its folder is inside the work folder, removed with it.
      const s3 = await startS3Server({ directory: join(work, 's3') });
      cleanups.push(() => s3.stop());
      env = registryS3Env(s3, join(dataDir, 'index.db'), '/e2e');
      console.log(`e2e: blobs in s3rver at ${s3.endpoint}, bucket ${s3.bucket}`);
    }
    const registry = await startRegistryProcess(dataDir, logFile, undefined, env);
    // Before the folder goes (spawnServer's own exit handler would come after this one).
    onExit.push(() => process.kill(registry.pid, 'SIGKILL'));
    cleanups.push(async () => {
      await registry.stop();
      if (process.env.OCIREG_E2E_KEEP) console.log(`e2e: kept ${work}`);
      else await rm(work, { recursive: true, force: true });
    });
    const server = await run('docker', ['-H', dockerHost, 'version', '--format', '{{.Server.Version}}'], { timeoutMs: 20_000 });
    console.log(`e2e: registry pid ${registry.pid} at ${registry.url}, data ${dataDir}; dockerd ${server.stdout.trim()} at ${dockerHost}`);

    project.provide('registryUrl', registry.url);
    project.provide('registryHost', new URL(registry.url).host);
    project.provide('registryLog', logFile);
    project.provide('dockerHost', dockerHost);
    project.provide('e2eWork', work);
    project.provide('registryStorage', storage);
  } catch (err) {
    await teardown();
    throw err;
  }
  return teardown;
}

/**
 * Three nodes behind haproxy (test/support/cluster.ts), on PostgreSQL (OCIREG_TEST_POSTGRES_URL, or a
 * private server started here) and an s3rver in the work folder. Every node appends to `logFile`;
 * blob GETs answer 307 to the bucket as a single node on S3 does, so the suite's expectations hold.
 */
async function startClusterRegistry(
  project: TestProject,
  work: string,
  logFile: string,
  cleanups: Array<() => Promise<void>>,
): Promise<{ url: string; host: string }> {
  if (!process.env.OCIREG_TEST_POSTGRES_URL) {
    const stopPostgres = await startPostgres(project);
    if (stopPostgres) cleanups.push(stopPostgres);
  }
  const cluster = await startCluster({
    directory: join(work, 'cluster'),
    sharedLog: logFile,
    env: { REGISTRY_STORAGE_REDIRECT_DISABLE: 'false' },
  });
  cleanups.push(async () => {
    await cluster.stop();
    if (process.env.OCIREG_E2E_KEEP) console.log(`e2e: kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  });
  const pids = cluster.nodes.map((n) => n.pid).join(', ');
  console.log(`e2e: ${cluster.nodes.length} registry nodes (pids ${pids}) behind haproxy at ${cluster.url}, blobs in s3rver at ${cluster.s3.endpoint}`);
  return { url: cluster.url, host: cluster.host };
}
