// CNCF distribution 2.8.2 (Debian's docker-registry) as a test upstream on loopback: started on a
// folder of its own, stopped and started again on the same port and storage (an upstream that goes
// down and comes back), and asked afterwards which requests it served.
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, closeSync, constants as fsConstants, openSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';
import { describe, it } from 'vitest';
import { freePort } from './built-server.js';
import { sleep } from './socket.js';

/** The distribution binary Debian's docker-registry package installs (on PATH). */
export const DISTRIBUTION_BINARY = 'docker-registry';
/** Set to 1 (CI does) to make distribution suites fail, rather than skip, when the binary is missing. */
export const REQUIRE_DISTRIBUTION_VARIABLE = 'OCIREG_REQUIRE_DISTRIBUTION';

const READY_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;
const LOG_SYNC_TIMEOUT_MS = 5_000;
/** Attempts at a free port when none was asked for (another process may take the one picked). */
const PORT_ATTEMPTS = 3;
/** Requests under this path only mark a place in the access log; requests() leaves them out. */
const LOG_SYNC_PATH = '/ocireg-log-sync/';

/** One request distribution served, from its access log. */
export interface DistributionRequest {
  method: string;
  /** The path, without the query. */
  path: string;
  /** Path and query, as the client sent them. */
  uri: string;
  status: number;
}

/** Which requests `requests()` returns: a predicate, or fields that must all match. */
export type RequestFilter =
  | ((request: DistributionRequest) => boolean)
  | {
      method?: string;
      /** The whole path, or a pattern tested against it. */
      path?: string | RegExp;
      status?: number;
      /** Only requests served after this mark (from `mark()`). */
      since?: number;
    };

export interface Distribution {
  /** `http://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** Its folder: config.yml, htpasswd, storage/, access.log (stdout) and registry.log (stderr, JSON). */
  dir: string;
  /** The credentials it wants, when started with htpasswd. */
  credentials?: { user: string; password: string };
  /** `Basic ...` for those credentials (undefined without htpasswd). */
  authorization?: string;
  /** Whether the process is running. */
  running(): boolean;
  /** SIGTERM, then SIGKILL after a bounded wait; waits for the exit. Safe to call when stopped. */
  stop(): Promise<void>;
  /** Starts it again, on the same port and storage, and waits until it answers. */
  start(): Promise<void>;
  /** Stops it and removes its folder. Safe to call twice. */
  close(): Promise<void>;
  /**
   * The requests it has served so far (over every start), oldest first. While it runs, first makes
   * sure the access log has caught up with every response already received.
   */
  requests(filter?: RequestFilter): Promise<DistributionRequest[]>;
  /** How many requests it has served so far: pass it as `since` to see only later ones. */
  mark(): Promise<number>;
  /** The last lines of its logs, for failure messages. */
  logTail(lines?: number): string;
}

export interface StartDistributionOptions {
  /** Require Basic credentials (bcrypt htpasswd file) on every /v2/ request. */
  htpasswd?: { user: string; password: string };
  /** Port on 127.0.0.1 (default: a free one). */
  port?: number;
  /** Use this folder (created if missing) instead of a fresh temporary one; close() removes it. */
  dir?: string;
}

/** Whether the distribution binary is on PATH. */
export function isDistributionInstalled(): boolean {
  return distributionBinary() !== undefined;
}

/** Whether distribution suites must fail when it is missing (OCIREG_REQUIRE_DISTRIBUTION=1). */
export function distributionRequired(): boolean {
  return /^(1|true|yes)$/i.test(process.env[REQUIRE_DISTRIBUTION_VARIABLE] ?? '');
}

export type DistributionAvailability = { state: 'ready' } | { state: 'skip'; reason: string } | { state: 'fail'; reason: string };

export function distributionAvailability(): DistributionAvailability {
  if (isDistributionInstalled()) return { state: 'ready' };
  const reason = `no ${DISTRIBUTION_BINARY} on PATH: apt-get install -y docker-registry (CNCF distribution 2.8.2)`;
  return distributionRequired() ? { state: 'fail', reason: `${REQUIRE_DISTRIBUTION_VARIABLE}=1 but ${reason}` } : { state: 'skip', reason };
}

/**
 * A describe block that runs only where distribution is installed. Without it the block is skipped,
 * or, when OCIREG_REQUIRE_DISTRIBUTION=1, holds a single failing test that says why.
 */
export function describeWithDistribution(name: string, body: () => void): void {
  const availability = distributionAvailability();
  if (availability.state === 'ready') {
    describe(name, body);
  } else if (availability.state === 'skip') {
    describe.skip(name, () => {
      it(availability.reason, () => undefined);
    });
  } else {
    describe(name, () => {
      it('needs CNCF distribution', () => {
        throw new Error(availability.reason);
      });
    });
  }
}

/** Starts distribution on 127.0.0.1 and waits (bounded) until GET /v2/ answers 200 or 401. */
export async function startDistribution(options: StartDistributionOptions = {}): Promise<Distribution> {
  const binary = distributionBinary();
  if (!binary) throw new Error(`no ${DISTRIBUTION_BINARY} on PATH: apt-get install -y docker-registry`);
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'ocireg-distribution-')));
  const accessLog = join(dir, 'access.log');
  const registryLog = join(dir, 'registry.log');
  const configFile = join(dir, 'config.yml');
  // One secret for every start, so that an upload begun before a restart can go on after it.
  const secret = randomBytes(24).toString('hex');

  let port = options.port ?? (await freePort());
  let child: ChildProcess | undefined;
  let alive = false;
  let exit: Promise<void> = Promise.resolve();
  let syncs = 0;

  const running = () => alive;
  const logTail = (lines = 30) => `${tailLines(registryLog, lines)}\n${tailLines(accessLog, lines)}`.trim();
  const url = () => `http://127.0.0.1:${port}`;

  const writeConfig = () => writeFile(configFile, configYaml({ dir, port, secret, htpasswd: options.htpasswd !== undefined }));

  const stop = async () => {
    const current = child;
    if (!current || !running()) {
      await exit;
      return;
    }
    current.kill('SIGTERM');
    if (!(await exitedWithin(exit, STOP_TIMEOUT_MS))) {
      current.kill('SIGKILL');
      if (!(await exitedWithin(exit, STOP_TIMEOUT_MS))) throw new Error(`distribution (pid ${current.pid}) did not exit after SIGKILL`);
    }
  };

  const launch = async () => {
    const out = openSync(accessLog, 'a');
    const err = openSync(registryLog, 'a');
    let spawned: ChildProcess;
    try {
      spawned = spawn(binary, ['serve', configFile], { cwd: dir, stdio: ['ignore', out, err], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } });
    } finally {
      closeSync(out);
      closeSync(err);
    }
    child = spawned;
    alive = true;
    const killOnExit = () => spawned.kill('SIGKILL');
    process.once('exit', killOnExit);
    exit = new Promise<void>((resolve) => {
      spawned.once('exit', () => resolve());
      spawned.once('error', () => resolve()); // could not spawn: no exit event follows
    }).finally(() => {
      alive = false;
      process.removeListener('exit', killOnExit);
    });
    try {
      await waitUntilUp(url(), () => !running(), logTail);
    } catch (e) {
      await stop();
      throw e;
    }
  };

  const start = async () => {
    if (running()) return;
    await launch();
  };

  try {
    await mkdir(join(dir, 'storage'), { recursive: true });
    if (options.htpasswd) {
      // Cost 4, bcrypt's least: distribution checks it on every request.
      const hash = await bcrypt.hash(options.htpasswd.password, 4);
      await writeFile(join(dir, 'htpasswd'), `${options.htpasswd.user}:${hash}\n`);
    }
    for (let attempt = 1; ; attempt++) {
      await writeConfig();
      try {
        await launch();
        break;
      } catch (e) {
        // The free port was taken before distribution could bind it: try another one.
        const taken = /address already in use/i.test(tailLines(registryLog, 5));
        if (!taken || options.port !== undefined || attempt >= PORT_ATTEMPTS) throw e;
        port = await freePort();
      }
    }
  } catch (e) {
    await stop().catch(() => undefined);
    if (options.dir === undefined) await rm(dir, { recursive: true, force: true });
    throw e;
  }

  const allRequests = async (): Promise<DistributionRequest[]> => {
    if (running()) {
      // distribution writes an access line after its response: ask for a marker, then wait until
      // its line is there, so every response received before this call has its line too.
      const marker = `${LOG_SYNC_PATH}${++syncs}`;
      const res = await fetch(`${url()}${marker}`, { signal: AbortSignal.timeout(LOG_SYNC_TIMEOUT_MS) });
      await res.arrayBuffer();
      const deadline = Date.now() + LOG_SYNC_TIMEOUT_MS;
      while (!readLog(accessLog).some((r) => r.path === marker)) {
        if (Date.now() >= deadline) throw new Error(`distribution's access log has no line for ${marker} after ${LOG_SYNC_TIMEOUT_MS} ms`);
        await sleep(10);
      }
    }
    return readLog(accessLog).filter((r) => !r.path.startsWith(LOG_SYNC_PATH));
  };

  let closed: Promise<void> | undefined;
  return {
    get url() {
      return url();
    },
    get port() {
      return port;
    },
    dir,
    ...(options.htpasswd
      ? {
          credentials: { ...options.htpasswd },
          authorization: `Basic ${Buffer.from(`${options.htpasswd.user}:${options.htpasswd.password}`).toString('base64')}`,
        }
      : {}),
    running,
    stop,
    start,
    close() {
      closed ??= (async () => {
        await stop();
        await rm(dir, { recursive: true, force: true });
      })();
      return closed;
    },
    async requests(filter) {
      return (await allRequests()).filter(matcher(filter));
    },
    async mark() {
      return (await allRequests()).length;
    },
    logTail,
  };
}

function configYaml(options: { dir: string; port: number; secret: string; htpasswd: boolean }): string {
  // log.formatter applies to the application log (stderr); the access log (stdout) is always one
  // Apache combined-format line per request, 401s included, and that is what requests() parses.
  const lines = [
    'version: 0.1',
    'log:',
    '  level: info',
    '  formatter: json',
    '  accesslog:',
    '    disabled: false',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(join(options.dir, 'storage'))}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${options.port}`,
    `  secret: ${options.secret}`,
    'health:',
    '  storagedriver:',
    '    enabled: false',
  ];
  if (options.htpasswd) {
    lines.push('auth:', '  htpasswd:', '    realm: distribution-test', `    path: ${JSON.stringify(join(options.dir, 'htpasswd'))}`);
  }
  return `${lines.join('\n')}\n`;
}

/** Polls GET /v2/ until it answers 200 or 401; throws with the log's tail if the process exits or the deadline passes. */
async function waitUntilUp(url: string, exited: () => boolean, logTail: () => string): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (exited()) throw new Error(`distribution exited before it was ready:\n${logTail()}`);
    try {
      const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200 || res.status === 401) return;
    } catch {
      // not listening yet
    }
    if (Date.now() >= deadline) throw new Error(`distribution was not ready within ${READY_TIMEOUT_MS} ms:\n${logTail()}`);
    await sleep(50);
  }
}

async function exitedWithin(exit: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([exit.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// 127.0.0.1 - - [08/Dec/2026:01:40:30 +0000] "GET /v2/ HTTP/1.1" 401 87 "" "curl/7.88.1"
const ACCESS_LINE = /^\S+ \S+ \S+ \[[^\]]*\] "(\S+) (\S+) [^"]*" (\d{3}) /;

function readLog(file: string): DistributionRequest[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const requests: DistributionRequest[] = [];
  for (const line of text.split('\n')) {
    const m = ACCESS_LINE.exec(line);
    if (!m) continue; // a line still being written, or not an access line
    const uri = m[2]!;
    const q = uri.indexOf('?');
    requests.push({ method: m[1]!, path: q < 0 ? uri : uri.slice(0, q), uri, status: Number(m[3]) });
  }
  return requests;
}

function matcher(filter: RequestFilter | undefined): (request: DistributionRequest, index: number) => boolean {
  if (filter === undefined) return () => true;
  if (typeof filter === 'function') return (r) => filter(r);
  return (r, index) =>
    (filter.since === undefined || index >= filter.since) &&
    (filter.method === undefined || r.method === filter.method.toUpperCase()) &&
    (filter.status === undefined || r.status === filter.status) &&
    (filter.path === undefined || (typeof filter.path === 'string' ? r.path === filter.path : filter.path.test(r.path)));
}

function tailLines(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

function distributionBinary(): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, DISTRIBUTION_BINARY);
    try {
      accessSync(candidate, fsConstants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}
