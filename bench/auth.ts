// The ours-only A/B workloads of authentication (distribution is not involved):
// - auth: the manifest HEAD load on ours without auth, and on ours with the token server, once
//   with a bearer token fetched beforehand and once with Basic credentials on every request;
// - authflood: the same bearer-token load on ours with the token server, with and without a side
//   load of wrong passwords sent to GET /auth/token.
import { createRequire } from 'node:module';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Agent } from 'node:http';
import type { Options } from './args.js';
import { BenchError, describe, expectStatus, keepAliveAgent, request } from './http.js';
import type { LoadResult } from './loadparse.js';
import type { MetricDef } from './metrics.js';
import type { OursVariant, Server } from './servers.js';
import { median, percentileSorted } from './stats.js';
import {
  CONNECTIONS,
  MANIFEST_REPO,
  ensureAlive,
  manifestLoad,
  manifestLoadMetrics,
  recordManifestLoad,
  type BenchContext,
  type Workload,
} from './workloads.js';

/** What htpasswd -B writes by default, and what the brief's servers are configured with. */
export const BCRYPT_COST = 10;
export const SERVICE = 'ocireg';
export const BENCH_USER = 'bench';
/** The flood's client address (the load and the setup come from 127.0.0.1). */
const FLOOD_ADDRESS = '127.0.0.2';
/** Wrong-password requests a second sent to /auth/token by the flood. */
export const FLOOD_RATE = 20;
/** The flood starts this long before the measured load, so that the load meets it at full rate. */
export const FLOOD_LEAD_MS = 1_000;
/** At most this many flood requests unanswered at once; beyond it a request is skipped (and counted). */
export const FLOOD_MAX_INFLIGHT = 64;
export const FLOOD_TIMEOUT_MS = 30_000;
/** The server locks an (address, user) pair after this many failures within a minute. */
export const LOCK_AFTER_FAILURES = 5;
/** Fewest user names the flood rotates among in a repetition. */
export const FLOOD_MIN_USERS = 50;

/** The part of the `bcrypt` package used here (it ships no type declarations of its own). */
interface Bcrypt {
  hash(data: string, rounds: number): Promise<string>;
}

/** An htpasswd line as `htpasswd -B` writes it: node's bcrypt says $2b$, htpasswd $2y$ (the same algorithm). */
export function htpasswdLine(user: string, bcryptHash: string): string {
  if (!/^\$2[aby]\$\d\d\$/.test(bcryptHash)) throw new Error(`not a bcrypt hash: ${bcryptHash.slice(0, 7)}…`);
  if (user === '' || user.includes(':')) throw new Error(`not an htpasswd user name: ${JSON.stringify(user)}`);
  return `${user}:${bcryptHash.replace(/^\$2[ab]\$/, '$2y$')}`;
}

export function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`, 'utf8').toString('base64')}`;
}

/** The auth section of ours with htpasswd users and the built-in token server. */
export function tokenServerConfig(htpasswd: string, key: string): Record<string, unknown> {
  return {
    auth: {
      htpasswd: { realm: SERVICE, path: htpasswd },
      tokenserver: { enabled: true, issuer: SERVICE, service: SERVICE, key },
    },
  };
}

/**
 * How many user names the flood rotates among in one repetition: enough that none gets
 * LOCK_AFTER_FAILURES wrong passwords within the repetition (the names are fresh in each), so
 * that every request of the flood costs the server a bcrypt comparison.
 */
export function floodUserCount(rate: number, seconds: number): number {
  const requests = Math.ceil(rate * (seconds + FLOOD_LEAD_MS / 1000)) + rate; // a second of slack for the stop
  const n = Math.max(FLOOD_MIN_USERS, Math.ceil(requests / (LOCK_AFTER_FAILURES - 1)));
  return n + (n % 2);
}

/** The flood's user names of repetition `rep`: the even ones are in the htpasswd file, the odd ones are not. */
export function floodUsers(rep: number, count: number): { name: string; exists: boolean }[] {
  return Array.from({ length: count }, (_, i) =>
    i % 2 === 0 ? { name: `flood-r${rep}-u${i}`, exists: true } : { name: `nobody-r${rep}-u${i}`, exists: false },
  );
}

export interface TokenAnswer {
  token: string;
  expiresIn: number;
}

/** Checks the JSON of a token answer: token and access_token the same non-empty string, expires_in and issued_at there. */
export function parseTokenAnswer(body: string): TokenAnswer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new Error('the token answer is not JSON');
  }
  const o = (parsed ?? {}) as Record<string, unknown>;
  if (typeof o.token !== 'string' || o.token === '') throw new Error('the token answer has no token');
  if (o.access_token !== undefined && o.access_token !== o.token) throw new Error('the token answer has an access_token other than its token');
  if (typeof o.expires_in !== 'number' || !(o.expires_in > 0)) throw new Error('the token answer has no positive expires_in');
  if (typeof o.issued_at !== 'string' || Number.isNaN(Date.parse(o.issued_at))) throw new Error('the token answer has no issued_at date');
  return { token: o.token, expiresIn: o.expires_in };
}

/** GET /auth/token for pulling bench/manifest, with the bench user's Basic credentials; checks the answer. */
async function fetchToken(srv: Server, authorization: string, neededSeconds: number, agent: Agent): Promise<string> {
  const url = `${srv.base}/auth/token?service=${SERVICE}&scope=${encodeURIComponent(`repository:${MANIFEST_REPO}:pull`)}`;
  const what = `${srv.label}: GET ${url}`;
  const res = await request(url, { method: 'GET', agent, headers: { authorization }, timeoutMs: 30_000 });
  expectStatus(res, 200, what);
  let answer: TokenAnswer;
  try {
    answer = parseTokenAnswer(res.body.toString('utf8'));
  } catch (err) {
    throw new BenchError(`${what}: ${(err as Error).message}:\n${describe(res)}`);
  }
  if (answer.expiresIn < neededSeconds) {
    throw new BenchError(`${what}: the token expires in ${answer.expiresIn} s, the load takes ${neededSeconds} s`);
  }
  return answer.token;
}

/** The files of ours's auth configuration: an htpasswd file with the bench user (and more), the token key's path. */
interface AuthFiles {
  htpasswd: string;
  key: string;
  /** Basic credentials of the bench user. */
  authorization: string;
}

async function writeAuthFiles(ctx: BenchContext, folder: string, extraUsers: readonly string[]): Promise<AuthFiles> {
  const bcrypt = createRequire(import.meta.url)('bcrypt') as Bcrypt;
  const dir = join(ctx.dir, folder);
  await mkdir(dir, { recursive: true });
  const password = randomBytes(12).toString('hex');
  const lines = [htpasswdLine(BENCH_USER, await bcrypt.hash(password, BCRYPT_COST))];
  if (extraUsers.length > 0) {
    // One hash for all: they are only ever sent wrong passwords, and a check costs the same.
    const hash = await bcrypt.hash(randomBytes(12).toString('hex'), BCRYPT_COST);
    for (const user of extraUsers) lines.push(htpasswdLine(user, hash));
  }
  const htpasswd = join(dir, 'htpasswd');
  await writeFile(htpasswd, `${lines.join('\n')}\n`, { mode: 0o600 });
  return { htpasswd, key: join(dir, 'token-key.pem'), authorization: basicAuth(BENCH_USER, password) };
}

/** Whether the bcrypt package loads (the bench writes htpasswd entries with it). */
function bcryptMissing(): string | undefined {
  try {
    createRequire(import.meta.url)('bcrypt');
    return undefined;
  } catch (err) {
    return `the bcrypt package does not load: ${(err as Error).message.split('\n')[0]}`;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The bearer token to send with a load of `seconds`, fetched (untimed) just before it. */
async function bearerFor(ctx: BenchContext, srv: Server): Promise<Record<string, string>> {
  const agent = keepAliveAgent(1);
  try {
    const token = await fetchToken(srv, srv.authorization!, ctx.opts.duration + 60, agent);
    return { authorization: `Bearer ${token}` };
  } finally {
    agent.destroy();
  }
}

/** Setup common to both: the small image pushed (with the server's credentials), then a short unrecorded warm-up. */
async function setupManifest(ctx: BenchContext, srv: Server): Promise<void> {
  await ctx.smallImage(srv);
  const headers = srv.authorization === undefined ? {} : await bearerFor(ctx, srv);
  await manifestLoad(ctx, srv, 'HEAD', 1, headers);
}

const conns = `${CONNECTIONS} conns`;

export function authWorkload(opts: Options): Workload {
  const metrics: MetricDef[] = [
    ...manifestLoadMetrics('auth.plain', 'auth', `manifest HEAD, no auth, ${conns}`, { rps: { oursOnly: true }, p99: { oursOnly: true } }),
    ...manifestLoadMetrics('auth.bearer', 'auth', `manifest HEAD, bearer token, ${conns}`, {
      rps: { baseline: 'auth.plain.rps', target: { kind: 'ratio', min: 0.7 } },
      p99: { baseline: 'auth.plain.p99' },
    }),
    ...manifestLoadMetrics('auth.basic', 'auth', `manifest HEAD, Basic password, ${conns}`, {
      rps: { baseline: 'auth.plain.rps', target: { kind: 'ratio', min: 0.7 } },
      p99: { baseline: 'auth.plain.p99' },
    }),
  ];
  return {
    name: 'auth',
    metrics,
    prepare: async () => bcryptMissing(),
    variants: async (ctx) => {
      const files = await writeAuthFiles(ctx, 'auth-files', []);
      return [
        { name: 'plain', label: 'ours, no auth' },
        { name: 'token', label: 'ours, token server', config: tokenServerConfig(files.htpasswd, files.key), authorization: files.authorization },
      ] satisfies OursVariant[];
    },
    setup: setupManifest,
    rep: async (ctx, rep, order) => {
      for (const srv of order) {
        ensureAlive(srv);
        if (srv.authorization === undefined) {
          const r = await manifestLoad(ctx, srv, 'HEAD', opts.duration);
          recordManifestLoad(ctx, 'auth.plain', srv, rep, `${srv.label}`, r);
        } else {
          // bearer and Basic, in an order that alternates too
          const arms = ['bearer', 'basic'] as const;
          for (const arm of rep % 2 === 0 ? arms : [...arms].reverse()) {
            const headers = arm === 'bearer' ? await bearerFor(ctx, srv) : { authorization: srv.authorization };
            const r = await manifestLoad(ctx, srv, 'HEAD', opts.duration, headers);
            recordManifestLoad(ctx, `auth.${arm}`, srv, rep, `${srv.label}, ${arm === 'bearer' ? 'bearer token' : 'Basic'}`, r);
          }
        }
        ensureAlive(srv);
      }
    },
  };
}

/** The statuses the flood got, and how fast they came. */
export interface FloodReport {
  /** Requests sent. */
  sent: number;
  /** Requests not sent because FLOOD_MAX_INFLIGHT were unanswered. */
  skipped: number;
  /** Answers by status. */
  statuses: Record<number, number>;
  /** Requests that failed without an answer (connection errors, timeouts). */
  errors: number;
  firstError: string;
  /** A description of the first answer other than 401 or 429. */
  firstUnexpected: string;
  /** From the first request sent to the stop. */
  seconds: number;
  /** From the first request sent to the last answer (the server's backlog drained). */
  drainedSeconds: number;
  medianMs: number;
  p99Ms: number;
}

/** Whether the flood's answers are all 401 or 429 (never 5xx, nor anything else) and none failed. */
export function floodProblems(report: FloodReport): string | undefined {
  const unexpected = Object.entries(report.statuses).filter(([status]) => status !== '401' && status !== '429');
  const parts: string[] = [];
  if (unexpected.length > 0) parts.push(`answers other than 401/429: ${unexpected.map(([s, n]) => `${n} × ${s}`).join(', ')}; first:\n${report.firstUnexpected}`);
  if (report.errors > 0) parts.push(`${report.errors} requests failed without an answer, first: ${report.firstError}`);
  return parts.length > 0 ? parts.join('\n') : undefined;
}

/**
 * The side load: FLOOD_RATE requests a second of GET /auth/token, each with a wrong password for
 * the next user name in turn, paced on an absolute schedule, until stop() is called. stop()
 * waits for the requests still out (each bounded by FLOOD_TIMEOUT_MS).
 */
function startFlood(srv: Server, users: readonly string[], rate: number): { stop(): Promise<FloodReport> } {
  // From another address than the measured load and the bench's own setup requests, as an attacker
  // would be: the server's per-address budget then holds the flood without holding up the bench.
  const agent = keepAliveAgent(FLOOD_MAX_INFLIGHT, FLOOD_ADDRESS);
  const url = `${srv.base}/auth/token?service=${SERVICE}&scope=${encodeURIComponent(`repository:${MANIFEST_REPO}:pull`)}`;
  const interval = 1000 / rate;
  const report: FloodReport = { sent: 0, skipped: 0, statuses: {}, errors: 0, firstError: '', firstUnexpected: '', seconds: 0, drainedSeconds: 0, medianMs: Number.NaN, p99Ms: Number.NaN };
  const latencies: number[] = [];
  const inflight = new Set<Promise<void>>();
  const started = performance.now();
  let due = 0;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;

  const one = (i: number) => {
    const headers = { authorization: basicAuth(users[i % users.length]!, `wrong-${i}`) };
    const t0 = performance.now();
    const p = request(url, { method: 'GET', agent, headers, timeoutMs: FLOOD_TIMEOUT_MS }).then(
      (res) => {
        latencies.push(performance.now() - t0);
        report.statuses[res.status] = (report.statuses[res.status] ?? 0) + 1;
        if (res.status !== 401 && res.status !== 429 && report.firstUnexpected === '') report.firstUnexpected = describe(res);
      },
      (err: unknown) => {
        report.errors++;
        if (report.firstError === '') report.firstError = (err as Error).message;
      },
    );
    const tracked = p.finally(() => inflight.delete(tracked));
    inflight.add(tracked);
  };
  const tick = () => {
    if (stopped) return;
    const now = performance.now();
    // every request due by now, late ones too (the schedule is absolute), unless too many are out
    for (; started + due * interval <= now; due++) {
      if (inflight.size >= FLOOD_MAX_INFLIGHT) report.skipped++;
      else {
        one(due);
        report.sent++;
      }
    }
    timer = setTimeout(tick, Math.max(0, started + due * interval - performance.now()));
  };
  tick();

  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      report.seconds = (performance.now() - started) / 1000;
      const bound = sleep(FLOOD_TIMEOUT_MS + 5_000).then(() => 'timeout' as const);
      const settled = await Promise.race([Promise.all([...inflight]).then(() => 'done' as const), bound]);
      agent.destroy();
      report.drainedSeconds = (performance.now() - started) / 1000;
      if (settled === 'timeout') {
        report.errors += inflight.size;
        report.firstError ||= `${inflight.size} requests still unanswered ${FLOOD_TIMEOUT_MS + 5_000} ms after the flood stopped`;
      }
      const sorted = Float64Array.from(latencies).sort();
      report.medianMs = median(latencies);
      report.p99Ms = percentileSorted(sorted, 99);
      return report;
    },
  };
}

export function authFloodWorkload(opts: Options): Workload {
  const flood = `${FLOOD_RATE} wrong passwords/s`;
  const metrics: MetricDef[] = [
    ...manifestLoadMetrics('authflood.quiet', 'authflood', `manifest HEAD, bearer, no flood, ${conns}`, { rps: { oursOnly: true }, p99: { oursOnly: true } }),
    ...manifestLoadMetrics('authflood.flood', 'authflood', `manifest HEAD, bearer, ${flood}`, {
      rps: { baseline: 'authflood.quiet.rps', target: { kind: 'ratio', min: 0.8 } },
      p99: { baseline: 'authflood.quiet.p99' },
    }),
    { id: 'authflood.rate', workload: 'authflood', label: `wrong passwords answered (until the last answer)`, unit: 'req/s', better: 'higher', oursOnly: true },
    { id: 'authflood.latency', workload: 'authflood', label: `wrong-password answer time, median`, unit: 'ms', better: 'lower', oursOnly: true },
  ];
  const userCount = floodUserCount(FLOOD_RATE, opts.duration);
  const totals: Record<number, number> = {};
  return {
    name: 'authflood',
    metrics,
    prepare: async () => bcryptMissing(),
    variants: async (ctx) => {
      const existing: string[] = [];
      for (let rep = 0; rep < opts.reps; rep++) for (const u of floodUsers(rep, userCount)) if (u.exists) existing.push(u.name);
      const files = await writeAuthFiles(ctx, 'authflood-files', existing);
      return [{ name: 'flood', label: 'ours, token server', config: tokenServerConfig(files.htpasswd, files.key), authorization: files.authorization }];
    },
    setup: setupManifest,
    rep: async (ctx, rep, order) => {
      const arms = ['quiet', 'flood'] as const;
      for (const srv of order) {
        for (const arm of rep % 2 === 0 ? arms : [...arms].reverse()) {
          ensureAlive(srv);
          const headers = await bearerFor(ctx, srv);
          if (arm === 'quiet') {
            const r = await manifestLoad(ctx, srv, 'HEAD', opts.duration, headers);
            recordManifestLoad(ctx, 'authflood.quiet', srv, rep, `${srv.label}, no flood`, r);
            continue;
          }
          const users = floodUsers(rep, userCount).map((u) => u.name);
          const side = startFlood(srv, users, FLOOD_RATE);
          let loaded: { result: LoadResult } | { err: unknown };
          try {
            await sleep(FLOOD_LEAD_MS);
            loaded = { result: await manifestLoad(ctx, srv, 'HEAD', opts.duration, headers) };
          } catch (err) {
            loaded = { err };
          }
          // stopped, and its requests awaited, whether the load failed or not
          const fr = await side.stop();
          ensureAlive(srv);
          if ('err' in loaded) throw loaded.err;
          const loadResult = loaded.result;
          const problems = floodProblems(fr);
          if (problems) throw new BenchError(`${srv.label}: the flood of GET /auth/token with wrong passwords: ${problems}`);
          const answered = Object.values(fr.statuses).reduce((a, b) => a + b, 0);
          for (const [status, n] of Object.entries(fr.statuses)) totals[Number(status)] = (totals[Number(status)] ?? 0) + n;
          recordManifestLoad(ctx, 'authflood.flood', srv, rep, `${srv.label}, with the flood`, loadResult, { flood: fr, users: users.length });
          ctx.results.record('authflood.rate', srv.kind, answered / fr.drainedSeconds);
          ctx.results.record('authflood.latency', srv.kind, fr.medianMs);
          ctx.results.detail('authflood.rate', srv.kind, { rep, ...fr, users: users.length });
          ctx.results.note(
            'authflood.rate',
            `over all repetitions: ${Object.entries(totals)
              .map(([s, n]) => `${n} × ${s}`)
              .join(', ')}; ${users.length} user names a repetition (half in htpasswd), fresh each repetition, so none reaches ${LOCK_AFTER_FAILURES} failures of its own; one client address (${FLOOD_ADDRESS}), which the server's budget of 30 failures a minute per address then holds to no bcrypt for a minute`,
            'totals',
          );
          if (fr.skipped > 0) ctx.results.note('authflood.rate', `rep ${rep + 1}: ${fr.skipped} requests not sent, ${FLOOD_MAX_INFLIGHT} being unanswered`, `skipped-${rep}`);
          ctx.log(
            `  flood: ${fr.sent} sent in ${fr.seconds.toFixed(1)} s (${fr.skipped} skipped), answered by ${fr.drainedSeconds.toFixed(1)} s: ${Object.entries(fr.statuses)
              .map(([s, n]) => `${n} × ${s}`)
              .join(', ')}; answer time median ${fr.medianMs.toFixed(0)} ms, p99 ${fr.p99Ms.toFixed(0)} ms`,
          );
        }
      }
    },
  };
}
