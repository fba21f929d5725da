import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm, statfs, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { sleep } from './socket.js';

const run = promisify(execFile);

/** The project root (where package.json and node_modules are). */
export const PROJECT_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');

export interface BuiltCli {
  /** Path of the compiled cli.js. */
  cli: string;
  /** Removes the build. */
  remove(): Promise<void>;
}

/**
 * Compiles src/ with tsconfig.build.json into a private temporary folder (so that
 * test files building in parallel, and the user's own dist/, do not collide), next
 * to a package.json saying "type": "module" and links to the project's node_modules and web/.
 */
export async function buildCli(timeoutMs = 180_000): Promise<BuiltCli> {
  const dir = await mkdtemp(join(tmpdir(), 'ocireg-build-'));
  try {
    await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
    await symlink(join(PROJECT_ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
    await symlink(join(PROJECT_ROOT, 'web'), join(dir, 'web'), 'dir'); // the UI's files, as in the package
    const tsc = join(PROJECT_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    const args = ['-p', 'tsconfig.build.json', '--outDir', join(dir, 'dist'), '--tsBuildInfoFile', join(dir, 'tsbuildinfo'), '--sourceMap', 'false'];
    try {
      await run(process.execPath, [tsc, ...args], { cwd: PROJECT_ROOT, timeout: timeoutMs, maxBuffer: 4 * 1024 * 1024 });
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`tsc -p tsconfig.build.json failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return { cli: join(dir, 'dist', 'cli.js'), remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Runs the CLI to completion (bounded) and returns its exit code and output. */
export async function runCli(
  cli: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 60_000,
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cli, ...args], { env: baseEnv(env), timeout: timeoutMs });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== 'number') throw err;
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

/** Only what node needs, so that REGISTRY_* variables of the test's own environment do not leak in. */
function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? tmpdir(), ...extra };
}

/** A free TCP port on `host` (there is a small window in which another process could take it). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

export interface ServerProcess {
  pid: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** What the process wrote so far (the last 64 KiB), for failure messages. */
  output(): string;
  /** SIGTERM, then SIGKILL if it has not exited within `timeoutMs`; waits for the exit. */
  stop(timeoutMs?: number): Promise<void>;
  /** SIGKILL at once, as a crash would; waits for the exit. */
  kill(): Promise<void>;
}

export interface SpawnOptions {
  /** Port on 127.0.0.1 (default: a free one). */
  port?: number;
  /** Address to listen on (default 127.0.0.1); an IPv6 address without brackets. */
  host?: string;
  /** Arguments after `serve` (a configuration file). */
  args?: string[];
  /**
   * Whether the server is ready, asked every 100 ms until the deadline (default: GET <url>/v2/
   * answers 200). A registry with auth answers 401; one with TLS needs its CA.
   */
  ready?: (url: string) => Promise<boolean>;
  /** Append the server's stdout and stderr to this file (written by the server itself) instead of keeping them in memory. */
  logFile?: string;
  readyMs?: number;
}

/**
 * Spawns `node <cli> serve` on 127.0.0.1 and waits (bounded) until /v2/ answers. Should the
 * test process exit without stopping it (an interrupted run), the server is killed with it.
 */
export async function spawnServer(cli: string, env: Record<string, string>, cwd: string, options: SpawnOptions = {}): Promise<ServerProcess> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (await freePort(host));
  const bracketed = host.includes(':') ? `[${host}]` : host;
  const url = `http://${bracketed}:${port}`;
  const logFd = options.logFile === undefined ? undefined : openSync(options.logFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [cli, 'serve', ...(options.args ?? [])], {
      cwd,
      env: baseEnv({ REGISTRY_HTTP_ADDR: `${bracketed}:${port}`, ...env }),
      stdio: ['ignore', logFd ?? 'pipe', logFd ?? 'pipe'],
    });
  } finally {
    if (logFd !== undefined) closeSync(logFd);
  }
  let log = '';
  const collect = (chunk: Buffer) => {
    log = (log + chunk.toString('utf8')).slice(-65536);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const output = () => (options.logFile === undefined ? log : tailOf(options.logFile));

  let exited = child.exitCode !== null;
  const killOnExit = () => {
    if (!exited) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  const exit = once(child, 'exit').then(() => {
    exited = true;
    process.removeListener('exit', killOnExit);
  });

  const stop = async (timeoutMs = 10_000) => {
    if (exited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exit;
    clearTimeout(timer);
  };
  const kill = async () => {
    if (!exited) child.kill('SIGKILL');
    await exit;
  };

  try {
    await pollReady(options.ready ?? answers200, url, () => exited, output, options.readyMs ?? 20_000);
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid!, url, output, stop, kill };
}

/** The last 64 KiB of a file ('' when it cannot be read). */
function tailOf(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-65536);
  } catch {
    return '';
  }
}

async function answers200(url: string): Promise<boolean> {
  const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) });
  await res.arrayBuffer();
  return res.status === 200;
}

/** Asks `ready` until it says yes (bounded); throws, with the output so far, if the process exits first. */
async function pollReady(
  ready: (url: string) => Promise<boolean>,
  url: string,
  exited: () => boolean,
  output: () => string,
  readyMs: number,
): Promise<void> {
  const deadline = Date.now() + readyMs;
  for (;;) {
    if (exited()) throw new Error(`the server exited before it was ready:\n${output()}`);
    if (await ready(url).catch(() => false)) return; // a failure: not listening yet
    if (Date.now() >= deadline) throw new Error(`the server was not ready within ${readyMs} ms:\n${output()}`);
    await sleep(100);
  }
}

export interface MemoryFigures {
  /** Resident set size now, in bytes. */
  rss: number;
  /** Peak resident set size since start (or since the last resetPeak), in bytes. */
  hwm: number;
}

/** VmRSS and VmHWM of a process, from /proc/<pid>/status. */
export async function memoryOf(pid: number): Promise<MemoryFigures> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
}

/** Resets VmHWM to the current RSS (Linux: write 5 to clear_refs). Returns false where that is not allowed. */
export async function resetPeak(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** Samples VmRSS every `intervalMs` until stopped; returns the highest sample. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): Promise<{ max: number; samples: number }> } {
  let max = 0;
  let samples = 0;
  let pending: Promise<void> = Promise.resolve();
  const take = () => {
    pending = memoryOf(pid).then(
      (m) => {
        max = Math.max(max, m.rss);
        samples++;
      },
      () => {},
    );
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    async stop() {
      clearInterval(timer);
      await pending;
      return { max, samples };
    },
  };
}

export function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export interface CliProcess {
  pid: number;
  /** stdout and stderr so far, interleaved (the last 64 KiB), for failure messages. */
  output(): string;
  /** stderr so far (the last 64 KiB). */
  stderr(): string;
  /** Whether the process has exited. */
  exited(): boolean;
  /** Sends a signal (no-op once it has exited). */
  signal(sig: NodeJS.Signals): void;
  /** Waits (bounded) for the process to exit; throws after `timeoutMs`, leaving it running. */
  waitExit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; ms: number }>;
  /** SIGKILL if still running, then waits for the exit (bounded). */
  kill(): Promise<void>;
}

/**
 * Spawns `node <cli> ...args` with only PATH, HOME and `env` in its environment
 * (unlike spawnServer, nothing is added: no REGISTRY_HTTP_ADDR).
 */
export function startCli(cli: string, args: string[], options: { env?: Record<string, string>; cwd: string }): CliProcess {
  const child: ChildProcess = spawn(process.execPath, [cli, ...args], {
    cwd: options.cwd,
    env: baseEnv(options.env ?? {}),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  let err = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString('utf8')).slice(-65536);
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString('utf8')).slice(-65536);
    err = (err + chunk.toString('utf8')).slice(-65536);
  });
  let result: { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined;
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) => {
    child.once('exit', (code, signal) => {
      result = { code, signal, at: Date.now() };
      resolve(result);
    });
  });
  // Failing to spawn at all (never expected: it is `node`) surfaces as an exit.
  child.once('error', () => {});

  const waitExit = async (timeoutMs: number) => {
    const started = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the process did not exit within ${timeoutMs} ms:\n${log}`)), timeoutMs);
    });
    try {
      const r = await Promise.race([exit, timeout]);
      return { code: r.code, signal: r.signal, ms: Math.max(0, r.at - started) };
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    pid: child.pid!,
    output: () => log,
    stderr: () => err,
    exited: () => result !== undefined,
    signal: (sig) => {
      if (result === undefined) child.kill(sig);
    },
    waitExit,
    kill: async () => {
      if (result !== undefined) return;
      child.kill('SIGKILL');
      await waitExit(10_000);
    },
  };
}

/** Polls `<url>/v2/` until it answers 200 (bounded); throws if the process exits first. */
export function waitUntilReady(proc: CliProcess, url: string, readyMs = 20_000): Promise<void> {
  return pollReady(answers200, url, proc.exited, proc.output, readyMs);
}

/** Whether the temporary directory has `bytes` free; says so when not (the test that needs them is then skipped). */
export async function enoughDiskFor(bytes: number, test: string): Promise<boolean> {
  const free = await statfs(tmpdir()).then((s) => s.bavail * s.bsize);
  if (free < bytes) console.log(`${test} skipped: only ${mib(free)} free under ${tmpdir()}, it needs ${mib(bytes)}`);
  return free >= bytes;
}
