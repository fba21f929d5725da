// Shared pieces of the end-to-end suite: running client commands (bounded), a registry
// process with its log in a file, and the private environments each client needs.
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PROJECT_ROOT, spawnServer, type ServerProcess } from '../support/built-server.js';
import { sleep } from '../support/socket.js';

/** The registry's compiled entry point; `npm run test:e2e` builds it first. */
export const BUILT_CLI = join(PROJECT_ROOT, 'dist', 'cli.js');

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  /** Resolve with a non-zero exit instead of throwing. */
  allowFailure?: boolean;
}

/**
 * Runs a command to completion with a time limit; kills it (SIGKILL) when the limit passes.
 * Throws with the command's output on a non-zero exit unless `allowFailure` is set.
 */
export async function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout = (stdout + c.toString('utf8')).slice(-1_000_000);
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-1_000_000);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
    // A grandchild that inherited the pipes would keep 'close' from ever firing: let go of them.
    setTimeout(() => {
      child.stdout.destroy();
      child.stderr.destroy();
    }, 5_000).unref();
  }, timeoutMs);
  let code: number;
  try {
    code = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
    });
  } finally {
    clearTimeout(timer);
  }
  const shown = `${command} ${args.join(' ')}`;
  if (timedOut) throw new Error(`${shown}: no exit within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  if (code !== 0 && !options.allowFailure) {
    throw new Error(`${shown}: exit ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  }
  return { code, stdout, stderr };
}

/**
 * The built registry on 127.0.0.1 (`port`, or a free one) over `dataDir`, logging (level info,
 * with the access log) into `logFile`. `env` adds configuration, such as an S3 backend (the
 * index then stays in `dataDir`).
 */
export function startRegistryProcess(
  dataDir: string,
  logFile: string,
  port?: number,
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  return spawnServer(
    BUILT_CLI,
    { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: dataDir, REGISTRY_LOG_LEVEL: 'info', ...env },
    dataDir,
    { port, logFile },
  );
}

/** One answered request of a registry access log. */
export interface AccessEntry {
  method: string;
  url: string;
  status: number;
}

/** How far a log file has grown (bytes), to look later at only what was logged after this point. */
export async function logMark(logFile: string): Promise<number> {
  return (await stat(logFile)).size;
}

async function logSince(logFile: string, from: number): Promise<string> {
  return (await readFile(logFile)).subarray(from).toString('utf8');
}

/**
 * The lines of a registry log file (from byte `from` on) that answered 5xx or were logged at
 * error level or above. Throws if that part of the log has no access-log entry at all, so that
 * a change of log format cannot make the check pass unseen.
 */
export async function serverFaults(logFile: string, from = 0): Promise<string[]> {
  const text = await logSince(logFile, from);
  if (accessEntries(text).length === 0) throw new Error(`no access-log entries in ${logFile} after byte ${from}`);
  const faults: string[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: { level?: number; res?: { statusCode?: number } };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    if ((entry.level ?? 0) >= 50 || (entry.res?.statusCode ?? 0) >= 500) faults.push(line);
  }
  return faults;
}

/**
 * Polls (bounded) the access log from byte `from` on until an entry satisfies `until`, since a
 * line can reach the file a moment after the client has its answer; returns the entries then.
 */
export async function accessLogUntil(
  logFile: string,
  from: number,
  until: (entry: AccessEntry) => boolean,
  timeoutMs = 10_000,
): Promise<AccessEntry[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const entries = await accessLog(logFile, from);
    if (entries.some(until)) return entries;
    if (Date.now() >= deadline) throw new Error(`the expected request did not appear in ${logFile} within ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** The access-log entries (method, url, status) of a registry log file, in order. */
export async function accessLog(logFile: string, from = 0): Promise<AccessEntry[]> {
  return accessEntries(await logSince(logFile, from));
}

function accessEntries(text: string): AccessEntry[] {
  const requests = new Map<string, { method: string; url: string }>();
  const done: AccessEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    let entry: { reqId?: string; node?: string; req?: { method: string; url: string }; res?: { statusCode: number } };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    if (!entry.reqId) continue;
    // Several nodes share one log in cluster mode, each counting its own request ids.
    const id = entry.node === undefined ? entry.reqId : `${entry.node} ${entry.reqId}`;
    if (entry.req) requests.set(id, entry.req);
    if (entry.res) {
      const req = requests.get(id);
      if (req) done.push({ method: req.method, url: req.url, status: entry.res.statusCode });
    }
  }
  return done;
}

/** Writes `size` bytes of random data to `path`, in 1 MiB pieces; returns their sha256 hex. */
export async function writeRandomFile(path: string, size: number): Promise<string> {
  const hash = createHash('sha256');
  const out = createWriteStream(path);
  let left = size;
  async function* pieces() {
    while (left > 0) {
      const piece = randomBytes(Math.min(left, 1024 * 1024));
      left -= piece.length;
      hash.update(piece);
      yield piece;
    }
  }
  await pipeline(pieces, out);
  return hash.digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A fresh folder under the system temp folder, or under `parent`. */
export function tempFolder(prefix: string, parent = tmpdir()): Promise<string> {
  return mkdtemp(join(parent, prefix));
}

/** Environment for the docker CLI: the suite's daemon, a private config folder, the classic builder. */
export async function dockerEnv(dockerHost: string, work: string): Promise<NodeJS.ProcessEnv> {
  const config = join(work, 'docker-config');
  await mkdir(config, { recursive: true });
  await writeFile(join(config, 'config.json'), '{}\n');
  return {
    ...process.env,
    DOCKER_HOST: dockerHost,
    DOCKER_CONFIG: config,
    DOCKER_BUILDKIT: '0',
    DOCKER_CLI_EXPERIMENTAL: 'enabled',
  };
}

/** Flags and environment giving podman and buildah a private vfs store under `work`. */
export async function containersEnv(work: string): Promise<{ env: NodeJS.ProcessEnv; storage: string[]; podman: string[] }> {
  await mkdir(work, { recursive: true });
  const auth = join(work, 'auth.json');
  await writeFile(auth, '{"auths":{}}\n');
  const storage = ['--root', join(work, 'root'), '--runroot', join(work, 'run'), '--storage-driver', 'vfs'];
  return {
    env: { ...process.env, REGISTRY_AUTH_FILE: auth },
    storage,
    podman: [...storage, '--cgroup-manager', 'cgroupfs', '--events-backend', 'file'],
  };
}

/** GETs (or HEADs) a manifest from the registry, accepting every manifest type. */
export async function fetchManifest(
  registryUrl: string,
  repo: string,
  reference: string,
  method: 'GET' | 'HEAD' = 'GET',
): Promise<{ status: number; digest: string | null; mediaType: string | null; body: Buffer }> {
  const res = await fetch(`${registryUrl}/v2/${repo}/manifests/${reference}`, {
    method,
    headers: {
      accept: [
        'application/vnd.oci.image.manifest.v1+json',
        'application/vnd.oci.image.index.v1+json',
        'application/vnd.docker.distribution.manifest.v2+json',
        'application/vnd.docker.distribution.manifest.list.v2+json',
      ].join(', '),
    },
    signal: AbortSignal.timeout(15_000),
  });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, digest: res.headers.get('docker-content-digest'), mediaType: res.headers.get('content-type'), body };
}

/** A file to bake into a test image: given content, or `randomBytes` random bytes. */
export interface ImageFile {
  path: string;
  content?: string;
  randomBytes?: number;
}

/**
 * Builds image `tag` FROM `from` with docker (`dockerEnv`), in a fresh build context `context`,
 * one COPY (so one layer) per file. Returns each file's sha256 hex by its path in the image.
 */
export async function buildImage(
  context: string,
  tag: string,
  from: string,
  files: readonly ImageFile[],
  env: NodeJS.ProcessEnv,
): Promise<Record<string, string>> {
  await rm(context, { recursive: true, force: true });
  await mkdir(context, { recursive: true });
  const sums: Record<string, string> = {};
  const lines = [`FROM ${from}`];
  for (const [i, file] of files.entries()) {
    const local = `f${i}`;
    if (file.randomBytes !== undefined) {
      sums[file.path] = await writeRandomFile(join(context, local), file.randomBytes);
    } else {
      await writeFile(join(context, local), file.content ?? '');
      sums[file.path] = sha256(file.content ?? '');
    }
    lines.push(`COPY ${local} ${file.path}`);
  }
  await writeFile(join(context, 'Dockerfile'), `${lines.join('\n')}\n`);
  await run('docker', ['build', '-q', '-t', tag, context], { env, timeoutMs: 300_000 });
  return sums;
}

/**
 * Copies `paths` out of image `ref` with docker (through a created, never started, container,
 * whose id goes to `created` so that the suite can remove it if this fails) and hashes them.
 */
export async function readImage(
  work: string,
  ref: string,
  paths: readonly string[],
  env: NodeJS.ProcessEnv,
  created: string[],
): Promise<Record<string, string>> {
  const docker = (args: string[]) => run('docker', args, { env, timeoutMs: 180_000 });
  const container = (await docker(['create', ref, '/not-run'])).stdout.trim();
  created.push(container);
  const out = join(work, `out-${container.slice(0, 12)}`);
  await mkdir(out);
  const sums: Record<string, string> = {};
  for (const [i, path] of paths.entries()) {
    const dest = join(out, String(i));
    await docker(['cp', `${container}:${path}`, dest]);
    sums[path] = await sha256File(dest);
  }
  await docker(['rm', container]);
  return sums;
}
