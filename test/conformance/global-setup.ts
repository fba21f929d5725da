import bcrypt from 'bcrypt';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { access, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { freePort, PROJECT_ROOT, spawnServer, startCli, type ServerProcess } from '../support/built-server.js';
import { startCluster, type Cluster } from '../support/cluster.js';
import startPostgres from '../support/postgres-global.js';
import { sleep } from '../support/socket.js';
import { registryS3Env, startS3Server, type S3Server } from '../support/s3.js';
import type { AuthMode } from './client-auth.js';

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
    /** How requests authenticate (test/conformance/client-auth.ts). */
    conformanceAuth: AuthMode;
    /** Credentials for `basic`, `token` and `auto` ('' for none). */
    conformanceUser: string;
    conformancePassword: string;
  }
}

/** The user our own registry is started with when OCI_CONFORMANCE_AUTH is basic or token. */
const OWN_USER = 'conformance';

/**
 * With OCI_CONFORMANCE_URL set, tests that registry. Otherwise starts our built registry
 * (dist/cli.js, built by `npm run conformance`) on a free 127.0.0.1 port with a fresh data
 * folder (and, with OCI_CONFORMANCE_STORAGE=s3, its blobs in an s3rver started here), and
 * stops it (by its pid) and removes the folder afterwards. With OCI_CONFORMANCE_CLUSTER=1, ours is three
 * nodes on s3rver and PostgreSQL behind haproxy (test/support/cluster.ts), tested through haproxy.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const namespace = (process.env.OCI_CONFORMANCE_NAMESPACE ?? `conformance/${randomBytes(6).toString('hex')}`).replace(/\/+$/, '');
  const deletes = parseBoolean(process.env.OCI_CONFORMANCE_DELETES, true);
  project.provide('conformanceNamespace', namespace);
  project.provide('conformanceDeletes', deletes);

  const auth = parseAuthMode(process.env.OCI_CONFORMANCE_AUTH);

  const given = process.env.OCI_CONFORMANCE_URL;
  if (given) {
    const user = process.env.OCI_CONFORMANCE_USER ?? '';
    const mode = auth ?? (user ? 'auto' : 'none');
    if (mode === 'basic' && !user) throw new Error('OCI_CONFORMANCE_AUTH=basic needs OCI_CONFORMANCE_USER (and OCI_CONFORMANCE_PASSWORD)');
    project.provide('conformanceUrl', given.replace(/\/+$/, ''));
    project.provide('conformanceOwn', false);
    project.provide('conformanceAuth', mode);
    project.provide('conformanceUser', user);
    project.provide('conformancePassword', process.env.OCI_CONFORMANCE_PASSWORD ?? '');
    return async () => {};
  }
  const mode = auth ?? 'none';
  if (mode === 'auto') throw new Error('OCI_CONFORMANCE_AUTH=auto is for a registry given by URL; ours takes none, basic or token');
  const password = mode === 'none' ? '' : randomBytes(12).toString('hex');
  project.provide('conformanceAuth', mode);
  project.provide('conformanceUser', mode === 'none' ? '' : OWN_USER);
  project.provide('conformancePassword', password);

  const cli = join(PROJECT_ROOT, 'dist', 'cli.js');
  try {
    await access(cli);
  } catch {
    throw new Error(`${cli} is missing: run \`npm run conformance\` (it builds first) or \`npm run build\``);
  }
  if (/^(1|true|yes)$/i.test(process.env.OCI_CONFORMANCE_CLUSTER ?? '')) {
    return startOwnCluster(project, cli, mode, password, deletes);
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
    const env = {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: data,
      REGISTRY_STORAGE_DELETE_ENABLED: String(deletes),
      REGISTRY_LOG_LEVEL: 'warn',
      ...(s3 ? registryS3Env(s3, join(data, 'index.db')) : {}),
    };
    if (mode === 'none') {
      server = await spawnServer(cli, env, data);
    } else {
      const configPath = await writeAuthConfig(data, mode, password);
      server = await spawnAuthenticated(cli, { ...env, REGISTRY_CONFIGURATION_PATH: configPath }, data);
      console.log(`conformance: our registry requires authentication (${mode === 'basic' ? 'htpasswd, Basic' : 'htpasswd and its token server'})`);
    }
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

function parseAuthMode(value: string | undefined): AuthMode | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === 'none' || value === 'basic' || value === 'token' || value === 'auto') return value;
  throw new Error(`OCI_CONFORMANCE_AUTH must be none, basic, token or auto, not ${JSON.stringify(value)}`);
}

/**
 * Writes an htpasswd file (one bcrypt entry, cost 5 as `htpasswd -B` writes it) and a
 * configuration file with auth.htpasswd (and, for `token`, the token server) that gives the
 * suite's user every right on every repository; returns the configuration file's path.
 */
async function writeAuthConfig(data: string, mode: 'basic' | 'token', password: string): Promise<string> {
  const config = await authConfig(data, mode, password);
  // JSON is YAML too.
  const path = join(data, 'config.yml');
  await writeFile(path, `${JSON.stringify(config, null, 2)}\n`);
  return path;
}

/** Writes the htpasswd file into `data` and returns the configuration's auth and access sections. */
async function authConfig(data: string, mode: 'basic' | 'token', password: string): Promise<Record<string, unknown>> {
  const htpasswd = join(data, 'htpasswd');
  await writeFile(htpasswd, `${OWN_USER}:${await bcrypt.hash(password, 5)}\n`);
  const tokenServer =
    mode === 'token'
      ? { tokenserver: { enabled: true, issuer: 'ocireg-conformance', service: 'ocireg-conformance', key: join(data, 'token-key.pem'), expiration: '5m' } }
      : {};
  return {
    auth: { htpasswd: { realm: 'ocireg-conformance', path: htpasswd }, ...tokenServer },
    access: { repositories: { '**': { users: { [OWN_USER]: ['pull', 'push', 'delete'] } } } },
  };
}

/**
 * Our registry as three nodes behind haproxy, on an s3rver and a fresh PostgreSQL database
 * (OCIREG_TEST_POSTGRES_URL's server, or a private one started here), in a temporary folder.
 */
async function startOwnCluster(
  project: TestProject,
  cli: string,
  mode: AuthMode,
  password: string,
  deletes: boolean,
): Promise<() => Promise<void>> {
  const data = await mkdtemp(join(tmpdir(), 'ocireg-conformance-'));
  const lastChance = () => rmSync(data, { recursive: true, force: true });
  process.once('exit', lastChance);
  let stopPostgres: (() => Promise<void>) | void = undefined;
  let cluster: Cluster | undefined;
  const teardown = async () => {
    process.removeListener('exit', lastChance);
    try {
      await cluster?.stop();
      if (stopPostgres) await stopPostgres();
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  };
  try {
    if (!process.env.OCIREG_TEST_POSTGRES_URL) stopPostgres = await startPostgres(project);
    cluster = await startCluster({
      directory: join(data, 'cluster'),
      cli,
      env: { REGISTRY_STORAGE_DELETE_ENABLED: String(deletes), REGISTRY_LOG_LEVEL: 'warn' },
      ...(mode === 'basic' || mode === 'token' ? { config: await authConfig(data, mode, password) } : {}),
    });
  } catch (err) {
    await teardown();
    throw err;
  }
  console.log(`conformance: our registry is ${cluster.nodes.length} nodes behind haproxy at ${cluster.url} (blobs in s3rver, index in PostgreSQL)`);
  project.provide('conformanceUrl', cluster.url);
  project.provide('conformanceOwn', true);
  return teardown;
}

/**
 * `node <cli> serve` on a free 127.0.0.1 port (spawnServer waits for a 200 from /v2/, which a
 * registry with authentication answers with 401): ready once /v2/ answers 401, bounded.
 */
async function spawnAuthenticated(cli: string, env: Record<string, string>, cwd: string): Promise<ServerProcess> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = startCli(cli, ['serve'], { env: { ...env, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}` }, cwd });
  const killOnExit = () => proc.signal('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async (timeoutMs = 10_000) => {
    proc.signal('SIGTERM');
    try {
      await proc.waitExit(timeoutMs);
    } catch {
      await proc.kill();
    }
    process.removeListener('exit', killOnExit);
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (proc.exited()) throw new Error(`the registry exited before it was ready:\n${proc.output()}`);
    const status = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2_000) }).then(
      async (res) => (await res.arrayBuffer(), res.status),
      () => 0,
    );
    if (status === 401) break;
    if (status !== 0 || Date.now() >= deadline) {
      await stop();
      throw new Error(`expected 401 from ${url}/v2/ without credentials, got ${status || 'no answer'}:\n${proc.output()}`);
    }
    await sleep(100);
  }
  return {
    pid: proc.pid,
    url,
    output: proc.output,
    stop,
    kill: async () => {
      await proc.kill();
      process.removeListener('exit', killOnExit);
    },
  };
}

function parseBoolean(value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  if (/^(1|true|yes|on)$/i.test(value)) return true;
  if (/^(0|false|no|off)$/i.test(value)) return false;
  throw new Error(`expected true or false, got ${JSON.stringify(value)}`);
}
