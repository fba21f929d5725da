// The two registries: their configuration files, starting them (each spawned directly, so
// that the child's pid is the server's), waiting until they answer, and stopping them.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { LogLevel } from './args.js';
import type { ShapeKind } from './shapes.js';

/**
 * Whose figures a server's are: ours, distribution, or ours in another shape (another index,
 * store or number of nodes: see shapes.ts), reported beside the plain single node of ours.
 */
export type ServerKind = 'ours' | 'distribution' | ShapeKind;

export interface Server {
  kind: ServerKind;
  /** Unique among the servers of a run: ours, distribution, or ours-<variant> (folder, log, JSON key). */
  name: string;
  /** As shown in the output. */
  label: string;
  /** The Authorization header the bench's own requests to it carry (setup, checks), if it wants one. */
  authorization?: string;
  pid: number;
  port: number;
  /** http://127.0.0.1:<port> */
  base: string;
  /** Its storage root. */
  root: string;
  configFile: string;
  logFile: string;
  /** The last lines of its log. */
  logTail(lines?: number): string;
  /** True once the process has exited. */
  exited(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; waits for the exit (bounded). */
  stop(graceMs?: number): Promise<void>;
  /** Every process that serves it, for memory figures (several registry nodes); just `pid` when absent. */
  pids?: readonly number[];
}

export interface ServerSpec {
  kind: ServerKind;
  /** The bench's temporary folder; the server's files go in <dir>/<kind>/. */
  dir: string;
  logLevel: LogLevel;
  /** node's path and our built cli.js, for ours. */
  ourCli: string;
  /** Node's flags for ours, as `npm start` gives them. */
  ourNodeFlags: readonly string[];
  projectRoot: string;
  readyMs?: number;
  /** A configuration of ours other than the plain one (kind must be 'ours'). */
  variant?: OursVariant;
}

/** A configuration of ours for an ours-only A/B workload. */
export interface OursVariant {
  /** Short and unique: the server is named ours-<name>. */
  name: string;
  /** As shown in the output. */
  label: string;
  /** Top-level keys added to ours's configuration (e.g. auth), or a function of its storage root giving them. */
  config?: Record<string, unknown> | ((root: string) => Record<string, unknown>);
  /** The Authorization header the bench's own requests carry (setup, the readiness probe). */
  authorization?: string;
}

/** A free TCP port on 127.0.0.1 (another process could still take it before the server binds). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const port = (srv.address() as { port: number }).port;
  srv.close();
  await once(srv, 'close');
  return port;
}

/**
 * The configuration both are given, in distribution's keys: filesystem storage under `root`,
 * deletes enabled, the log level, the address. Distribution also gets an http.secret (or it
 * warns); ours gets its index beside its blobs (distribution has no such key).
 */
export function registryConfig(
  kind: ServerKind,
  root: string,
  port: number,
  logLevel: LogLevel,
  secret: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: logLevel },
    storage: {
      filesystem: { rootdirectory: root },
      delete: { enabled: true },
    },
    http: { addr: `127.0.0.1:${port}` },
  };
  if (kind === 'distribution') (config.http as Record<string, unknown>).secret = secret;
  else Object.assign(config, { index: { path: join(root, 'index.db') } }, extra);
  return config;
}

/** The environment without REGISTRY_* variables, which would override the configuration file. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('REGISTRY_')) env[k] = v;
  return env;
}

function tailOfFile(file: string, lines: number): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text.split('\n').slice(-lines - 1).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function startServer(spec: ServerSpec): Promise<Server> {
  const variant = spec.variant;
  if (variant && spec.kind !== 'ours') throw new Error('only ours has variants');
  const name = variant ? `ours-${variant.name}` : spec.kind;
  const home = join(spec.dir, name);
  const root = join(home, 'data');
  await mkdir(root, { recursive: true });
  const port = await freePort();
  const configFile = join(home, 'config.yml');
  const logFile = join(spec.dir, `${name}.log`);
  const secret = randomBytes(16).toString('hex');
  const extra = typeof variant?.config === 'function' ? variant.config(root) : variant?.config;
  await writeFile(configFile, stringify(registryConfig(spec.kind, root, port, spec.logLevel, secret, extra)));

  const fd = openSync(logFile, 'a');
  let child: ChildProcess;
  try {
    child =
      spec.kind === 'ours'
        ? spawn(process.execPath, [...spec.ourNodeFlags, spec.ourCli, 'serve', configFile], { cwd: spec.projectRoot, env: cleanEnv(), stdio: ['ignore', fd, fd] })
        : spawn('docker-registry', ['serve', configFile], { cwd: home, env: cleanEnv(), stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
  let hasExited = false;
  let spawnError: Error | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', () => {
      hasExited = true;
      resolve();
    });
    child.once('error', (err) => {
      spawnError = err;
      hasExited = true;
      resolve();
    });
  });
  const label = variant ? variant.label : spec.kind === 'ours' ? 'ours' : 'distribution';
  const server: Server = {
    kind: spec.kind,
    name,
    label,
    ...(variant?.authorization !== undefined ? { authorization: variant.authorization } : {}),
    pid: child.pid ?? -1,
    port,
    base: `http://127.0.0.1:${port}`,
    root,
    configFile,
    logFile,
    logTail: (lines = 30) => tailOfFile(logFile, lines),
    exited: () => hasExited,
    stop: async (graceMs = 10_000) => {
      if (hasExited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const bound = new Promise<void>((resolve) => setTimeout(resolve, graceMs + 5_000).unref());
      await Promise.race([exit, bound]);
      clearTimeout(timer);
    },
  };

  const readyMs = spec.readyMs ?? 30_000;
  const deadline = Date.now() + readyMs;
  for (;;) {
    if (hasExited) {
      throw new Error(`${label} exited before answering${spawnError ? ` (${spawnError.message})` : ''}; last log lines of ${logFile}:\n${server.logTail()}`);
    }
    try {
      const headers: Record<string, string> = server.authorization === undefined ? {} : { authorization: server.authorization };
      const res = await fetch(`${server.base}/v2/`, { headers, signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      if (res.status === 200) return server;
    } catch {
      // not listening yet
    }
    if (Date.now() >= deadline) {
      await server.stop();
      throw new Error(`${label} did not answer GET /v2/${server.authorization === undefined ? '' : ' (with credentials)'} with 200 within ${readyMs} ms; last log lines of ${logFile}:\n${server.logTail()}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The Node flags in a `node <flags> dist/cli.js serve` start script (package.json's `start`). */
export function nodeFlagsOf(startScript: string): string[] {
  const words = startScript.trim().split(/\s+/);
  if (words[0] !== 'node') return [];
  const flags: string[] = [];
  for (const word of words.slice(1)) {
    if (!word.startsWith('-')) break;
    flags.push(word);
  }
  return flags;
}
