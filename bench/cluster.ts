// A registry of several nodes: a shared blob store (whatever the caller starts: s3rver in the tests
// and in the bench), a fresh PostgreSQL database, N `ocireg serve` processes (dist/cli.js) sharing
// both, and haproxy in front, round robin per request. The core of test/support/cluster.ts (which
// starts s3rver in-process) and of the bench's cluster shape (`npm run bench -- --nodes 3`); it lives
// here because the bench's tsconfig cannot reach into test/.
//
// It runs in vitest's main process too (global setups), so it must import nothing of vitest.
import { spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { freePort } from './servers.js';

export { freePort };

/** Debian's haproxy; HAPROXY overrides it. */
export const HAPROXY = process.env.HAPROXY ?? '/usr/sbin/haproxy';

const READY_MS = 30_000;
const STOP_MS = 15_000;
const ADMIN_TIMEOUT_MS = 10_000;

/** What the nodes need of the shared store: an S3 endpoint with one bucket (s3rver's S3Server is one). */
export interface ClusterStore {
  endpoint: string;
  bucket: string;
  region: string;
  accessKey: string;
  secretKey: string;
  stop(): Promise<void>;
}

export interface ClusterCoreOptions<S extends ClusterStore> {
  /** How many registry nodes (default 3). */
  nodes?: number;
  /** Folder for the configuration files, logs, the bucket's files and the token key (made if missing; left in place). */
  directory: string;
  /** Extra REGISTRY_* variables for every node (auth, maintenance...); they win over the defaults, not over storage and index. */
  env?: Record<string, string>;
  /** Sections for every node's configuration file (what has no variable, such as `access`). */
  config?: Record<string, unknown>;
  /** Admin URL of the PostgreSQL server to make the cluster's database on. */
  postgresUrl: string;
  /** Every node appends to this one file instead of a file of its own (lines tell their `node` field apart). */
  sharedLog?: string;
  /** The CLI to run (dist/cli.js). */
  cli: string;
  /** Node's flags before the CLI (the bench gives the ones `npm start` uses). */
  nodeFlags?: readonly string[];
  /** Starts the shared store, given the cluster's folder; stop() stops it. */
  startStore(directory: string): Promise<S>;
  /** The haproxy binary (default HAPROXY). */
  haproxy?: string;
}

export interface ClusterNode {
  /** node1, node2... (the `node` field of its log lines, and its server name in haproxy). */
  readonly name: string;
  /** `http://127.0.0.1:<port>`: the node itself, bypassing the balancer. */
  readonly url: string;
  readonly port: number;
  /** The current process's pid (a new one after restart()). */
  readonly pid: number;
  readonly logFile: string;
  readonly configPath: string;
  /** Whether the process is running. */
  alive(): boolean;
  /** Sends `signal` (default SIGKILL); for SIGKILL also waits (bounded) for the exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Waits (bounded) for the process to exit; throws if it does not within `timeoutMs`. */
  waitExit(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Stops it if it runs (SIGTERM, then SIGKILL), starts it again on the same port, waits until ready. */
  restart(): Promise<void>;
}

export interface Cluster<S extends ClusterStore = ClusterStore> {
  /** `http://127.0.0.1:<port>` of haproxy. */
  readonly url: string;
  /** `127.0.0.1:<port>` of haproxy, for image references. */
  readonly host: string;
  readonly nodes: ClusterNode[];
  /** The shared store. */
  readonly s3: S;
  /** The cluster's own database (dropped by stop()). */
  readonly databaseUrl: string;
  /** The PostgreSQL server's admin URL the database was made on. */
  readonly adminUrl: string;
  /** What every node runs with besides its address: storage, index, the caller's env. For CLI commands on the same registry. */
  readonly env: Record<string, string>;
  /** The CLI the nodes run. */
  readonly cli: string;
  readonly haproxyConfig: string;
  /** haproxy's pid. */
  readonly balancerPid: number;
  /** The folder given in the options. */
  readonly directory: string;
  /** Each log file's content (one entry per file: one only with `sharedLog`). */
  logs(): string[];
  /** Lines logged at error level or above (pino level >= 50) in any node's log. */
  errors(): string[];
  /** haproxy's view of each node: UP, DOWN, ... (by node name). */
  balancerStatus(): Promise<Record<string, string>>;
  /** Waits (bounded) until haproxy sees `node` in `status` (e.g. DOWN after a kill, UP after a restart). */
  waitBalancerStatus(node: string, status: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
  /** Stops haproxy, the nodes, s3rver, and drops the database. Safe to call twice. */
  stop(): Promise<void>;
}

/** A fresh database of its own on the admin URL's server; drop() removes it, disconnecting whoever is left. */
export interface ClusterDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

/** Makes `ocireg_cluster_<random>` on the server (UTF-8, the server's default collation). */
export async function createClusterDatabase(admin: string): Promise<ClusterDatabase> {
  const name = `ocireg_cluster_${randomBytes(6).toString('hex')}`;
  await withAdmin(admin, (client) => client.query(`CREATE DATABASE "${name}" TEMPLATE template0 ENCODING 'UTF8'`));
  const url = new URL(admin);
  url.pathname = `/${name}`;
  let dropped: Promise<void> | undefined;
  return {
    url: url.toString(),
    name,
    drop() {
      dropped ??= withAdmin(admin, async (client) => {
        await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
      });
      return dropped;
    },
  };
}

/** Runs `fn` on one short-lived connection to the admin URL, closed afterwards whatever happens. */
export async function withAdmin<T>(admin: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: admin, connectionTimeoutMillis: ADMIN_TIMEOUT_MS, query_timeout: 60_000 });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** Environment that puts a node's blobs in `s3` (bucket root) and its index in the database at `databaseUrl`. */
export function clusterStorageEnv(s3: ClusterStore, databaseUrl: string): Record<string, string> {
  return {
    REGISTRY_STORAGE: 's3',
    REGISTRY_STORAGE_S3_BUCKET: s3.bucket,
    REGISTRY_STORAGE_S3_REGION: s3.region,
    REGISTRY_STORAGE_S3_REGIONENDPOINT: s3.endpoint,
    REGISTRY_STORAGE_S3_ACCESSKEY: s3.accessKey,
    REGISTRY_STORAGE_S3_SECRETKEY: s3.secretKey,
    REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
    REGISTRY_STORAGE_S3_ROOTDIRECTORY: '/',
    REGISTRY_INDEX_DRIVER: 'postgres',
    REGISTRY_INDEX_POSTGRES_URL: databaseUrl,
  };
}

export async function startClusterWith<S extends ClusterStore>(options: ClusterCoreOptions<S>): Promise<Cluster<S>> {
  const count = options.nodes ?? 3;
  if (!Number.isInteger(count) || count < 1 || count > 16) throw new Error(`nodes must be 1 to 16, not ${count}`);
  const dir = options.directory;
  await mkdir(dir, { recursive: true });
  const cli = options.cli;
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run npm run build first`);
  const admin = options.postgresUrl;

  // Undone in reverse order by stop(), also when the start fails half-way.
  const undo: Array<() => Promise<void>> = [];
  const unwind = async () => {
    for (const step of undo.splice(0).reverse()) await step().catch((err: unknown) => console.error('cluster stop:', err));
  };
  try {
    const s3 = await options.startStore(dir);
    undo.push(() => s3.stop());
    const database = await createClusterDatabase(admin);
    undo.push(() => database.drop());

    const env: Record<string, string> = {
      REGISTRY_LOG_LEVEL: 'info',
      // Every blob byte through the nodes (and so through haproxy), not 307s to the bucket.
      REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
      ...options.env,
      ...clusterStorageEnv(s3, database.url),
    };
    await shareTokenKey(env, options.config, dir);

    const nodes: NodeHandle[] = [];
    undo.push(async () => {
      await Promise.all(nodes.map((n) => n.stopProcess()));
    });
    const specs: NodeSpec[] = [];
    for (let i = 1; i <= count; i++) {
      const name = `node${i}`;
      const configPath = join(dir, `${name}.json`);
      // JSON is YAML too. The node's name goes into every log line it writes.
      await writeFile(configPath, `${JSON.stringify(mergeConfig(options.config ?? {}, { log: { fields: { node: name } } }), null, 2)}\n`);
      specs.push({
        name,
        cli,
        nodeFlags: options.nodeFlags ?? [],
        env,
        configPath,
        cwd: dir,
        port: await freePort(),
        logFile: options.sharedLog ?? join(dir, `${name}.log`),
      });
    }
    // One at a time: the first migrates the new database, the others find it ready.
    for (const spec of specs) nodes.push(await startNodeOnFreePort(spec));

    const balancer = await startBalancer(dir, nodes, options.haproxy ?? HAPROXY);
    undo.push(() => balancer.stop());

    const host = `127.0.0.1:${balancer.port}`;
    const logFiles = [...new Set(nodes.map((n) => n.logFile))];
    const logs = () => logFiles.map((file) => readText(file));
    let stopped: Promise<void> | undefined;
    return {
      url: `http://${host}`,
      host,
      nodes,
      s3,
      databaseUrl: database.url,
      adminUrl: admin,
      env,
      cli,
      haproxyConfig: balancer.configPath,
      balancerPid: balancer.pid,
      directory: dir,
      logs,
      errors: () => logs().flatMap(errorLines),
      balancerStatus: balancer.status,
      waitBalancerStatus: balancer.waitStatus,
      stop() {
        stopped ??= unwind();
        return stopped;
      },
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}

/** The lines of a pino log at error level or above. */
export function errorLines(text: string): string[] {
  const found: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      if (((JSON.parse(line) as { level?: number }).level ?? 0) >= 50) found.push(line);
    } catch {
      // a line cut short by a kill
    }
  }
  return found;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

/**
 * With the token server on, every node must sign with one key (a node on PostgreSQL does not make a
 * missing one): makes it once, before any node starts, where the configuration says or in `dir`.
 */
async function shareTokenKey(env: Record<string, string>, config: Record<string, unknown> | undefined, dir: string): Promise<void> {
  const fromConfig = (config?.auth as { tokenserver?: { enabled?: boolean; key?: string } } | undefined)?.tokenserver;
  const enabled = env.REGISTRY_AUTH_TOKENSERVER_ENABLED ? /^true$/i.test(env.REGISTRY_AUTH_TOKENSERVER_ENABLED) : fromConfig?.enabled === true;
  if (!enabled) return;
  const path = env.REGISTRY_AUTH_TOKENSERVER_KEY || fromConfig?.key || join(dir, 'token-key.pem');
  env.REGISTRY_AUTH_TOKENSERVER_KEY = path;
  if (existsSync(path)) return;
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
}

function mergeConfig(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(extra)) {
    const current = out[key];
    out[key] =
      isPlainObject(current) && isPlainObject(value) ? mergeConfig(current, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export interface NodeSpec {
  name: string;
  cli: string;
  /** Node's flags before the CLI (none when absent). */
  nodeFlags?: readonly string[];
  /** REGISTRY_* variables (REGISTRY_HTTP_ADDR is added). */
  env: Record<string, string>;
  /** Passed as `serve <configPath>`. */
  configPath: string;
  cwd: string;
  port: number;
  /** stdout and stderr are appended here. */
  logFile: string;
  readyMs?: number;
}

export interface NodeHandle extends ClusterNode {
  /** SIGTERM, then SIGKILL after STOP_MS; resolves once it has exited (no-op if it has). */
  stopProcess(): Promise<void>;
}

/**
 * Starts `node <cli> serve <config>` on 127.0.0.1:<port> with only PATH, HOME and `env`, and waits
 * (bounded) until GET /healthz answers 200, which it does with or without auth. Also for a node
 * outside a cluster (a node on another database, for comparisons).
 */
export async function startNode(spec: NodeSpec): Promise<NodeHandle> {
  const url = `http://127.0.0.1:${spec.port}`;
  let proc = await launch(spec);
  const handle: NodeHandle = {
    name: spec.name,
    url,
    port: spec.port,
    get pid() {
      return proc.child.pid!;
    },
    logFile: spec.logFile,
    configPath: spec.configPath,
    alive: () => proc.result === undefined,
    async kill(signal: NodeJS.Signals = 'SIGKILL') {
      if (proc.result !== undefined) return;
      proc.child.kill(signal);
      if (signal === 'SIGKILL') await waitFor(proc, 10_000);
    },
    waitExit: (timeoutMs = STOP_MS) => waitFor(proc, timeoutMs),
    stopProcess: () => stopProc(proc),
    async restart() {
      await stopProc(proc);
      proc = await launch(spec);
    },
  };
  return handle;
}

/** startNode, with another port if the chosen one was taken meanwhile (freePort leaves a small window). */
async function startNodeOnFreePort(spec: NodeSpec): Promise<NodeHandle> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startNode(spec);
    } catch (err) {
      if (attempt >= 3 || !/EADDRINUSE/.test(String((err as Error).message))) throw err;
      spec.port = await freePort();
    }
  }
}

interface Proc {
  child: ChildProcess;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  result?: { code: number | null; signal: NodeJS.Signals | null };
}

async function launch(spec: NodeSpec): Promise<Proc> {
  const fd = openSync(spec.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [...(spec.nodeFlags ?? []), spec.cli, 'serve', spec.configPath], {
      cwd: spec.cwd,
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        HOME: process.env.HOME ?? tmpdir(),
        ...spec.env,
        REGISTRY_HTTP_ADDR: `127.0.0.1:${spec.port}`,
      },
      stdio: ['ignore', fd, fd],
    });
  } finally {
    closeSync(fd);
  }
  const proc = watch(child);
  const url = `http://127.0.0.1:${spec.port}`;
  const readyMs = spec.readyMs ?? READY_MS;
  const deadline = Date.now() + readyMs;
  for (;;) {
    if (proc.result !== undefined) throw new Error(`${spec.name} exited (${describeExit(proc.result)}) before it was ready:\n${tail(spec.logFile)}`);
    if (await answers(`${url}/healthz`, 200)) return proc;
    if (Date.now() >= deadline) {
      await stopProc(proc);
      throw new Error(`${spec.name} was not ready within ${readyMs} ms:\n${tail(spec.logFile)}`);
    }
    await sleep(100);
  }
}

/** Tracks a child's exit; kills it if the test process exits first (an interrupted run). */
function watch(child: ChildProcess): Proc {
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const proc: Proc = {
    child,
    exit: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        process.removeListener('exit', killOnExit);
        proc.result = { code, signal };
        resolve(proc.result);
      });
    }),
  };
  // A failure to spawn at all shows up as the exit.
  child.once('error', () => undefined);
  return proc;
}

async function waitFor(proc: Proc, timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`pid ${proc.child.pid} did not exit within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([proc.exit, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function stopProc(proc: Proc): Promise<void> {
  if (proc.result !== undefined) return;
  proc.child.kill('SIGTERM');
  try {
    await waitFor(proc, STOP_MS);
  } catch {
    proc.child.kill('SIGKILL');
    await waitFor(proc, 10_000);
  }
}

function describeExit(result: { code: number | null; signal: NodeJS.Signals | null }): string {
  return result.signal ? `signal ${result.signal}` : `code ${result.code}`;
}

function tail(file: string): string {
  return readText(file).slice(-8192);
}

async function answers(url: string, status: number): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
    await res.arrayBuffer();
    return res.status === status;
  } catch {
    return false;
  }
}

/** haproxy's configuration for `nodes`: the rules the issue sets (round robin per request, health checks, retries elsewhere). */
export function haproxyConfig(port: number, statsPort: number, nodes: Array<{ name: string; port: number }>): string {
  const servers = nodes.map((n) => `    server ${n.name} 127.0.0.1:${n.port} check inter 1s fall 2 rise 1`);
  return [
    'global',
    '    maxconn 4096',
    '',
    'defaults',
    '    mode http',
    '    timeout connect 5s',
    // Long: a big layer's PATCH or GET may take minutes.
    '    timeout client 10m',
    '    timeout server 10m',
    '    timeout http-request 30s',
    '    timeout http-keep-alive 10s',
    '    timeout queue 30s',
    '    timeout check 2s',
    // A new server connection per request: each request (not each client connection) goes to the next node.
    '    option http-server-close',
    // A request that cannot reach its node (dead, or closed while draining) goes to another one at
    // once; so does one answered 503 (a node shutting down refuses new requests).
    '    retries 3',
    '    option redispatch 1',
    '    retry-on conn-failure 503',
    '',
    'frontend registry',
    `    bind 127.0.0.1:${port}`,
    '    default_backend nodes',
    '',
    'backend nodes',
    '    balance roundrobin',
    '    option httpchk GET /healthz',
    '    http-check expect status 200',
    ...servers,
    '',
    // For the tests: each server's state, as CSV.
    'listen stats',
    `    bind 127.0.0.1:${statsPort}`,
    '    stats enable',
    '    stats uri /stats',
    '',
  ].join('\n');
}

interface Balancer {
  port: number;
  pid: number;
  configPath: string;
  status(): Promise<Record<string, string>>;
  waitStatus(node: string, status: 'UP' | 'DOWN', timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

async function startBalancer(dir: string, nodes: NodeHandle[], haproxy: string): Promise<Balancer> {
  const port = await freePort();
  const statsPort = await freePort();
  const configPath = join(dir, 'haproxy.cfg');
  await writeFile(configPath, haproxyConfig(port, statsPort, nodes));
  const logFile = join(dir, 'haproxy.log');
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    // -db: stay in the foreground, as our child.
    child = spawn(haproxy, ['-db', '-f', configPath], { cwd: dir, stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  const proc = watch(child);

  const status = async (): Promise<Record<string, string>> => {
    const res = await fetch(`http://127.0.0.1:${statsPort}/stats;csv`, { signal: AbortSignal.timeout(2_000) });
    const text = await res.text();
    const [header, ...rows] = text.split('\n');
    const columns = (header ?? '').replace(/^# /, '').split(',');
    const at = (name: string) => columns.indexOf(name);
    const out: Record<string, string> = {};
    for (const row of rows) {
      const cells = row.split(',');
      if (cells[at('pxname')] === 'nodes' && cells[at('svname')] !== 'BACKEND') out[cells[at('svname')]!] = cells[at('status')] ?? '';
    }
    return out;
  };
  const waitStatus = async (node: string, want: 'UP' | 'DOWN', timeoutMs = 15_000) => {
    const deadline = Date.now() + timeoutMs;
    let seen = '';
    for (;;) {
      seen = (await status().catch(() => ({}) as Record<string, string>))[node] ?? '';
      // "UP 1/2" and "DOWN 1/2" are on their way; only the settled state counts.
      if (seen === want) return;
      if (Date.now() >= deadline) throw new Error(`haproxy did not see ${node} ${want} within ${timeoutMs} ms (last: ${seen || 'nothing'})`);
      await sleep(100);
    }
  };
  const stop = async () => {
    if (proc.result !== undefined) return;
    child.kill('SIGTERM');
    try {
      await waitFor(proc, 10_000);
    } catch {
      child.kill('SIGKILL');
      await waitFor(proc, 10_000);
    }
  };

  // Ready once every node is UP behind it and a request through it is answered.
  const deadline = Date.now() + READY_MS;
  for (;;) {
    if (proc.result !== undefined) throw new Error(`haproxy exited (${describeExit(proc.result)}):\n${await readFile(logFile, 'utf8').catch(() => '')}`);
    const states = await status().catch(() => ({}) as Record<string, string>);
    if (nodes.every((n) => states[n.name] === 'UP') && (await answers(`http://127.0.0.1:${port}/healthz`, 200))) break;
    if (Date.now() >= deadline) {
      await stop();
      throw new Error(`haproxy was not ready within ${READY_MS} ms (${JSON.stringify(states)}):\n${readText(logFile)}`);
    }
    await sleep(100);
  }
  return { port, pid: child.pid ?? -1, configPath, status, waitStatus, stop };
}


function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
