// Ours in other shapes than the plain single node (filesystem store, SQLite index), for
// `--index postgres` and `--nodes N`: each is started once, takes part in the workloads that
// make sense for it (SHAPE_WORKLOADS) in the same interleaved order as the plain node, and is
// reported beside it as a ratio.
//
// - pg: one node, the same filesystem store (marked shared), a PostgreSQL index: the index's cost.
// - s3: one node on s3rver with SQLite: the shared store's cost, without PostgreSQL.
// - s3pg: one node on s3rver with PostgreSQL: the index's cost over the shared store.
// - nodes: N nodes on s3rver and PostgreSQL behind haproxy (round robin per request): the cluster.
//
// s3rver runs as a process of its own (one per shape), not inside the bench, so that its CPU is
// not the client's and can be told apart.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { IndexDriver, LogLevel } from './args.js';
import { createClusterDatabase, freePort, startClusterWith, type ClusterDatabase, type ClusterStore } from './cluster.js';
import { startServer, type Server } from './servers.js';

export type ShapeKind = 'pg' | 's3' | 's3pg' | 'nodes';

export interface ShapeSpec {
  kind: ShapeKind;
  /** Server name: folder, log, JSON key. */
  name: string;
  /** As shown in the log lines. */
  label: string;
  /** The table's column heading. */
  column: string;
  store: 'filesystem' | 's3rver';
  index: IndexDriver;
  nodes: number;
  /** Whether requests go through haproxy. */
  balancer: boolean;
}

/** The shapes the options ask for, in the order they are reported (none without --index postgres or --nodes). */
export function shapesOf(opts: { index: IndexDriver; nodes: number }): ShapeSpec[] {
  const shapes: ShapeSpec[] = [];
  if (opts.index === 'postgres') {
    shapes.push({ kind: 'pg', name: 'ours-pg', label: 'ours, PostgreSQL index', column: 'pg', store: 'filesystem', index: 'postgres', nodes: 1, balancer: false });
  }
  if (opts.nodes > 1) {
    shapes.push(
      { kind: 's3', name: 'ours-s3', label: 'ours, s3rver + SQLite', column: 's3', store: 's3rver', index: 'sqlite', nodes: 1, balancer: false },
      { kind: 's3pg', name: 'ours-s3-pg', label: 'ours, s3rver + PostgreSQL', column: 's3+pg', store: 's3rver', index: 'postgres', nodes: 1, balancer: false },
      {
        kind: 'nodes',
        name: `ours-${opts.nodes}-nodes`,
        label: `ours, ${opts.nodes} nodes behind haproxy`,
        column: `${opts.nodes} nodes`,
        store: 's3rver',
        index: 'postgres',
        nodes: opts.nodes,
        balancer: true,
      },
    );
  }
  return shapes;
}

/** What a shape's processes are, for the CPU and memory figures. */
export interface ShapeProcess {
  role: 'node' | 's3rver' | 'haproxy' | 'postgres';
  pid: number;
}

/** A running shape: a Server for the workloads, and its processes. */
export interface ShapeServer {
  spec: ShapeSpec;
  server: Server;
  /** The registry nodes, s3rver, haproxy and the PostgreSQL backends serving its database now. */
  processes(): Promise<ShapeProcess[]>;
  /** The shape's database and store, for the JSON (no password: the URL is the admin URL's). */
  describe: Record<string, unknown>;
}

export interface ShapeContext {
  dir: string;
  logLevel: LogLevel;
  ourCli: string;
  ourNodeFlags: readonly string[];
  projectRoot: string;
  /** Admin URL of the PostgreSQL server. */
  postgresUrl: string | undefined;
}

const S3RVER_READY_MS = 15_000;
const BUCKET = 'bench';

interface S3rverProcess extends ClusterStore {
  pid: number;
}

/** s3rver's command-line entry point, from its package. */
function s3rverBin(): string {
  return join(dirname(createRequire(import.meta.url).resolve('s3rver/package.json')), 'bin', 's3rver.js');
}

/** s3rver as a child process on a free port, with one bucket, its files under `dir`. */
export async function startS3rver(dir: string): Promise<S3rverProcess> {
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const logFile = `${dir}.log`;
  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(
      process.execPath,
      [s3rverBin(), '-d', dir, '-a', '127.0.0.1', '-p', String(port), '--silent', '--no-vhost-buckets', '--configure-bucket', BUCKET],
      { stdio: ['ignore', fd, fd] },
    );
  } finally {
    closeSync(fd);
  }
  let exited = false;
  // last resort, should the bench die without stopping it
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      exited = true;
      process.removeListener('exit', killOnExit);
      resolve();
    });
    child.once('error', () => {
      exited = true;
      resolve();
    });
  });
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await Promise.race([exit, new Promise((r) => setTimeout(r, 10_000).unref())]);
    clearTimeout(timer);
  };
  const endpoint = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + S3RVER_READY_MS;
  for (;;) {
    if (exited) throw new Error(`s3rver exited before answering; ${logFile}:\n${readTail(logFile)}`);
    try {
      // Any answer will do (403 without a signature): it is listening, and the bucket is made before it listens.
      const res = await fetch(`${endpoint}/${BUCKET}`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      break;
    } catch {
      // not listening yet
    }
    if (Date.now() >= deadline) {
      await stop();
      throw new Error(`s3rver did not answer within ${S3RVER_READY_MS} ms; ${logFile}:\n${readTail(logFile)}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { endpoint, bucket: BUCKET, region: 'us-east-1', accessKey: 'S3RVER', secretKey: 'S3RVER', pid: child.pid ?? -1, stop };
}

function readTail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-4096);
  } catch {
    return '(no log)';
  }
}

/** The PostgreSQL backends connected to `database` now (their pids, for the CPU figures). */
async function backendsOf(adminUrl: string, database: string): Promise<number[]> {
  const { default: pg } = await import('pg');
  const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5_000, query_timeout: 10_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const res = await client.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1', [database]);
    return res.rows.map((r) => r.pid);
  } catch {
    return [];
  } finally {
    await client.end().catch(() => undefined);
  }
}

function s3Section(s3: ClusterStore): Record<string, unknown> {
  return {
    bucket: s3.bucket,
    region: s3.region,
    regionendpoint: s3.endpoint,
    accesskey: s3.accessKey,
    secretkey: s3.secretKey,
    forcepathstyle: true,
    rootdirectory: '/',
  };
}

/** Starts a shape; whatever it started is stopped by its server's stop() (also when the start fails half-way). */
export async function startShape(spec: ShapeSpec, ctx: ShapeContext): Promise<ShapeServer> {
  if (spec.index === 'postgres' && !ctx.postgresUrl) {
    throw new Error(`${spec.label} needs a PostgreSQL server: give --postgres-url or set OCIREG_TEST_POSTGRES_URL`);
  }
  const admin = ctx.postgresUrl ?? '';
  const home = join(ctx.dir, spec.name);
  await mkdir(home, { recursive: true });

  if (spec.nodes > 1 || spec.balancer) {
    let store: S3rverProcess | undefined;
    const cluster = await startClusterWith({
      nodes: spec.nodes,
      directory: home,
      cli: ctx.ourCli,
      nodeFlags: ctx.ourNodeFlags,
      postgresUrl: admin,
      env: { REGISTRY_LOG_LEVEL: ctx.logLevel, REGISTRY_STORAGE_DELETE_ENABLED: 'true' },
      startStore: async (dir) => (store = await startS3rver(join(dir, 's3'))),
    });
    const database = new URL(cluster.databaseUrl).pathname.slice(1);
    const server: Server = {
      kind: spec.kind,
      name: spec.name,
      label: spec.label,
      pid: cluster.nodes[0]!.pid,
      pids: cluster.nodes.map((n) => n.pid),
      port: Number(new URL(cluster.url).port),
      base: cluster.url,
      root: join(home, 's3'),
      configFile: cluster.nodes[0]!.configPath,
      logFile: cluster.nodes[0]!.logFile,
      logTail: (lines = 30) => cluster.nodes.map((n) => `${n.name}:\n${readTail(n.logFile).split('\n').slice(-lines - 1).join('\n')}`).join('\n'),
      exited: () => cluster.nodes.some((n) => !n.alive()),
      stop: () => cluster.stop(),
    };
    return {
      spec,
      server,
      describe: { store: 's3rver (its own process)', index: 'postgres', database, nodes: spec.nodes, balancer: 'haproxy, round robin per request', env: redacted(cluster.env) },
      processes: async () => [
        ...cluster.nodes.map((n) => ({ role: 'node' as const, pid: n.pid })),
        ...(store ? [{ role: 's3rver' as const, pid: store.pid }] : []),
        { role: 'haproxy' as const, pid: cluster.balancerPid },
        ...(await backendsOf(admin, database)).map((pid) => ({ role: 'postgres' as const, pid })),
      ],
    };
  }

  // One node, started as the plain one is (config file, npm start's flags), with another store or index.
  const undo: Array<() => Promise<void>> = [];
  const unwind = async () => {
    for (const step of undo.splice(0).reverse()) await step().catch(() => undefined);
  };
  try {
    let s3: S3rverProcess | undefined;
    if (spec.store === 's3rver') {
      s3 = await startS3rver(join(home, 's3'));
      undo.push(() => s3!.stop());
    }
    let db: ClusterDatabase | undefined;
    if (spec.index === 'postgres') {
      db = await createClusterDatabase(admin);
      undo.push(() => db!.drop());
    }
    const variantName = spec.name.replace(/^ours-/, '');
    const started = await startServer({
      kind: 'ours',
      dir: ctx.dir,
      logLevel: ctx.logLevel,
      ourCli: ctx.ourCli,
      ourNodeFlags: ctx.ourNodeFlags,
      projectRoot: ctx.projectRoot,
      variant: {
        name: variantName,
        label: spec.label,
        config: (root) => ({
          storage: s3
            ? { s3: s3Section(s3), delete: { enabled: true }, redirect: { disable: true } }
            : { filesystem: { rootdirectory: root, shared: true }, delete: { enabled: true } },
          index: db ? { driver: 'postgres', postgres: { url: db.url } } : { path: join(root, 'index.db') },
        }),
      },
    });
    undo.push(() => started.stop());
    const server: Server = { ...started, kind: spec.kind, stop: unwind };
    return {
      spec,
      server,
      describe: { store: s3 ? 's3rver (its own process)' : 'filesystem (shared: true)', index: spec.index, ...(db ? { database: db.name } : {}), nodes: 1 },
      processes: async () => [
        { role: 'node' as const, pid: started.pid },
        ...(s3 ? [{ role: 's3rver' as const, pid: s3.pid }] : []),
        ...(db ? (await backendsOf(admin, db.name)).map((pid) => ({ role: 'postgres' as const, pid })) : []),
      ],
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}

/** The environment without what looks like a secret (none here today but the bucket's fixed keys). */
function redacted(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) out[k] = /SECRET|PASSWORD/.test(k) ? '(hidden)' : k.endsWith('_URL') ? v.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:(hidden)@') : v;
  return out;
}
