// Running a command to completion with a time limit, and finding one on PATH.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface RunOptions {
  timeoutMs: number;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Resolve on a non-zero exit instead of throwing. */
  allowFailure?: boolean;
}

/** Children running now, so that an interrupted bench can end them. */
const running = new Set<ChildProcess>();

export function killRunning(): void {
  for (const child of running) child.kill('SIGKILL');
}

const KEEP = 256 * 1024;

/** Runs `command args` (no shell); SIGKILL when `timeoutMs` passes. Throws with its output on failure. */
export async function run(command: string, args: readonly string[], options: RunOptions): Promise<Ran> {
  const started = performance.now();
  const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => {
    stdout = (stdout + c.toString('utf8')).slice(-KEEP);
  });
  child.stderr.on('data', (c: Buffer) => {
    stderr = (stderr + c.toString('utf8')).slice(-KEEP);
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
    // a grandchild holding the pipes would keep 'close' from firing
    setTimeout(() => {
      child.stdout.destroy();
      child.stderr.destroy();
    }, 5_000).unref();
  }, options.timeoutMs);
  let code: number;
  try {
    code = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (c, signal) => resolve(c ?? (signal ? 128 : 1)));
    });
  } finally {
    clearTimeout(timer);
    running.delete(child);
  }
  const ms = performance.now() - started;
  const shown = [command, ...args].join(' ');
  if (timedOut) throw new Error(`${shown}: no exit within ${options.timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  if (code !== 0 && !options.allowFailure) throw new Error(`${shown}: exit ${code}\nstdout:\n${stdout}\nstderr:\n${stderr}`);
  return { code, stdout, stderr, ms };
}

/** The path of an executable on PATH, or undefined. */
export function which(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const path = join(dir, command);
    try {
      accessSync(path, constants.X_OK);
      return path;
    } catch {
      // not here
    }
  }
  return undefined;
}
