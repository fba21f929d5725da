// The workloads: what each sends, what it checks, and the figures it records.
import { randomBytes } from 'node:crypto';
import type { Agent } from 'node:http';
import type { Options, WorkloadName } from './args.js';
import { BenchError, keepAliveAgent, request, type Response } from './http.js';
import { generatorFor, runLoad } from './load.js';
import type { LoadResult } from './loadparse.js';
import type { Limits } from './machine.js';
import { withPeakMemory, type PeakMemory } from './memory.js';
import type { MetricDef, Results } from './metrics.js';
import { forEachConcurrent, timed } from './pool.js';
import { run, which } from './proc.js';
import {
  OCI_MANIFEST,
  listAll,
  listingEntries,
  makeSmallImage,
  mountBlob,
  pullBlob,
  pushChunked,
  pushMonolithic,
  pushSmallImage,
  putManifest,
  sha256,
  type SmallImage,
} from './registry.js';
import type { OursVariant, Server } from './servers.js';
import { median, sizeText } from './stats.js';

export const CHUNK = 16 * 1024 * 1024;
export const SMALL_BLOBS = 1000;
export const SMALL_BLOB_SIZE = 4096;
export const TAG_COUNT = 10_000;
export const REPO_COUNT = 10_000;
export const WRITERS = 8;
export const CONNECTIONS = 32;
export const LISTINGS = 20;
/** A listing measurement stops early (keeping at least 3 samples) once it has taken this long. */
export const LISTING_BUDGET_MS = 90_000;
export const MANIFEST_REPO = 'bench/manifest';

export interface BigBlob {
  file: string;
  size: number;
  digest: string;
}

export interface BenchContext {
  opts: Options;
  /** The bench's temporary folder. */
  dir: string;
  results: Results;
  limits: Limits | undefined;
  log(line: string): void;
  /** The big random file, made on first use. */
  bigBlob(): Promise<BigBlob>;
  /** The small image, pushed to bench/manifest:latest on each server on first use. */
  smallImage(srv: Server): Promise<SmallImage>;
  /** Repositories holding the big blob, per server (for the pull). */
  bigBlobRepo: Map<Server, string>;
}

export interface Workload {
  name: WorkloadName;
  metrics: MetricDef[];
  /** Once before the repetitions; a string means the workload is skipped, for that reason. */
  prepare?(ctx: BenchContext): Promise<string | undefined>;
  /** Once per server before the repetitions (untimed unless it records a `once` metric). */
  setup?(ctx: BenchContext, srv: Server): Promise<void>;
  /**
   * An ours-only A/B workload (distribution not involved): the configurations of ours it compares,
   * each started for this workload alone after `prepare`, and stopped with the others at the end.
   * Its setup and repetitions get these servers instead of the shared ones (ours and
   * distribution), in an order that alternates per repetition too.
   */
  variants?(ctx: BenchContext): Promise<OursVariant[]>;
  /** One repetition over the servers, in the order given. */
  rep(ctx: BenchContext, rep: number, order: readonly Server[]): Promise<void>;
  /** After the repetitions, also after a failure. */
  cleanup?(ctx: BenchContext): Promise<void>;
}

const MB = 1e6;
const MIB = 1024 * 1024;

/** Flushes dirty pages, so that a timed push does not pay for the previous one's writeback. */
async function settleDisk(): Promise<void> {
  await run('sync', [], { timeoutMs: 300_000, allowFailure: true });
}

export function ensureAlive(srv: Server): void {
  if (srv.exited()) throw new BenchError(`${srv.label} has exited; last log lines of ${srv.logFile}:\n${srv.logTail()}`);
}

/** The same work on each server in turn, checking the server is still up afterwards. */
function eachServer(fn: (ctx: BenchContext, srv: Server, rep: number) => Promise<void>) {
  return async (ctx: BenchContext, rep: number, order: readonly Server[]) => {
    for (const srv of order) {
      ensureAlive(srv);
      await fn(ctx, srv, rep);
      ensureAlive(srv);
    }
  };
}

function mbps(bytes: number, ms: number): number {
  return bytes / MB / (ms / 1000);
}

/** Whether curl moves the big blob (see Options.load). */
function bigClientIsCurl(opts: Options): boolean {
  return opts.load === 'auto' && which('curl') !== undefined;
}

/** withPeakMemory over several processes (the nodes of a cluster): the highest peak of any one of them. */
async function withPeakMemoryOfAll<T>(pids: readonly number[], work: () => Promise<T>): Promise<{ result: T; memory: PeakMemory }> {
  const [first, ...rest] = pids;
  if (first === undefined) throw new Error('no process to watch');
  if (rest.length === 0) return withPeakMemory(first, work);
  const outer = await withPeakMemory(first, () => withPeakMemoryOfAll(rest, work));
  const inner = outer.result.memory;
  return {
    result: outer.result.result,
    memory: { peak: Math.max(outer.memory.peak, inner.peak), hwmReset: outer.memory.hwmReset && inner.hwmReset, samples: outer.memory.samples + inner.samples },
  };
}

export function pushWorkload(opts: Options): Workload {
  const size = sizeText(opts.size);
  return {
    name: 'push',
    metrics: [
      { id: 'push.mono', workload: 'push', label: `monolithic push, ${size}`, unit: 'MB/s', better: 'higher', target: { kind: 'ratio', min: 1.5 } },
      { id: 'push.limit', workload: 'push', label: 'push vs min(disk, SHA-256)', unit: '%', better: 'higher', noRatio: true, target: { kind: 'atLeast', value: 70 } },
      { id: 'push.memory', workload: 'push', label: `peak RSS during the push`, unit: 'MiB', better: 'lower', target: { kind: 'below', value: 150 } },
    ],
    rep: eachServer(async (ctx, srv, rep) => {
      const blob = await ctx.bigBlob();
      const repo = `bench/mono-r${rep}`;
      const agent = keepAliveAgent(1);
      try {
        await settleDisk();
        const useCurl = bigClientIsCurl(opts);
        ctx.results.note('push.mono', `client: ${useCurl ? 'curl' : 'node'}`);
        const { result, memory } = await withPeakMemoryOfAll(srv.pids ?? [srv.pid], () => timed(() => pushMonolithic(srv, repo, blob, agent, useCurl)));
        const speed = mbps(blob.size, result.ms);
        ctx.results.record('push.mono', srv.kind, speed);
        ctx.results.record('push.memory', srv.kind, memory.peak / MIB);
        ctx.results.detail('push.mono', srv.kind, { rep, ms: result.ms, bytes: blob.size });
        ctx.results.detail('push.memory', srv.kind, { rep, peakBytes: memory.peak, hwmReset: memory.hwmReset, rssSamples: memory.samples });
        if (!memory.hwmReset) ctx.results.note('push.memory', `VmHWM could not be reset for ${srv.label}: from VmRSS samples (every 25 ms) only`);
        if (ctx.limits) {
          ctx.results.record('push.limit', srv.kind, (100 * speed) / Math.min(ctx.limits.diskWriteMBps, ctx.limits.sha256MBps));
        }
        ctx.bigBlobRepo.set(srv, repo);
        ctx.log(`  ${srv.label}: ${speed.toFixed(0)} MB/s, peak ${(memory.peak / MIB).toFixed(0)} MiB`);
      } finally {
        agent.destroy();
      }
    }),
  };
}

export function chunkedWorkload(opts: Options): Workload {
  return {
    name: 'chunked',
    metrics: [
      {
        id: 'push.chunked',
        workload: 'chunked',
        label: `chunked push, ${sizeText(opts.size)} in ${sizeText(CHUNK)}`,
        unit: 'MB/s',
        better: 'higher',
        target: { kind: 'ratio', min: 1.5 },
      },
    ],
    rep: eachServer(async (ctx, srv, rep) => {
      const blob = await ctx.bigBlob();
      const agent = keepAliveAgent(1);
      try {
        await settleDisk();
        const { ms, result: chunks } = await timed(() => pushChunked(srv, `bench/chunked-r${rep}`, blob, CHUNK, agent));
        ctx.results.record('push.chunked', srv.kind, mbps(blob.size, ms));
        ctx.results.detail('push.chunked', srv.kind, { rep, ms, bytes: blob.size, patches: chunks });
        ctx.log(`  ${srv.label}: ${mbps(blob.size, ms).toFixed(0)} MB/s (${chunks} PATCHes)`);
      } finally {
        agent.destroy();
      }
    }),
  };
}

export function pullWorkload(opts: Options): Workload {
  return {
    name: 'pull',
    metrics: [{ id: 'pull', workload: 'pull', label: `blob pull, ${sizeText(opts.size)}`, unit: 'MB/s', better: 'higher', target: { kind: 'ratio', min: 1 } }],
    rep: eachServer(async (ctx, srv, rep) => {
      const blob = await ctx.bigBlob();
      const agent = keepAliveAgent(1);
      try {
        let repo = ctx.bigBlobRepo.get(srv);
        if (repo === undefined) {
          repo = 'bench/pull';
          ctx.log(`  ${srv.label}: pushing the blob to pull (untimed)`);
          await pushMonolithic(srv, repo, blob, agent);
          ctx.bigBlobRepo.set(srv, repo);
        }
        const useCurl = bigClientIsCurl(opts);
        ctx.results.note('pull', `client: ${useCurl ? 'curl' : 'node'}`);
        const { ms } = await timed(() => pullBlob(srv, repo, blob.digest, blob.size, agent, useCurl));
        ctx.results.record('pull', srv.kind, mbps(blob.size, ms));
        ctx.results.detail('pull', srv.kind, { rep, ms, bytes: blob.size, repo });
        ctx.log(`  ${srv.label}: ${mbps(blob.size, ms).toFixed(0)} MB/s`);
      } finally {
        agent.destroy();
      }
    }),
  };
}

/** The URL the manifest loads hit: bench/manifest:latest, by tag. */
export function manifestUrl(srv: Server): string {
  return `${srv.base}/v2/${MANIFEST_REPO}/manifests/latest`;
}

/**
 * The manifest load (shared by manifest, auth and authflood): `method` on bench/manifest:latest
 * over CONNECTIONS keep-alive connections for `seconds`, each request with `headers` too; every
 * answer must be 2xx (see runLoad).
 */
export function manifestLoad(
  ctx: BenchContext,
  srv: Server,
  method: 'GET' | 'HEAD',
  seconds: number,
  headers: Readonly<Record<string, string>> = {},
): Promise<LoadResult> {
  const spec = { url: manifestUrl(srv), method, accept: OCI_MANIFEST, connections: CONNECTIONS, seconds, dir: ctx.dir, headers };
  return runLoad(spec, ctx.opts.load);
}

/** The two figures of a manifest load, `<prefix>.rps` and `<prefix>.p99`. */
export function manifestLoadMetrics(
  prefix: string,
  workload: WorkloadName,
  label: string,
  more: { rps?: Partial<MetricDef>; p99?: Partial<MetricDef> } = {},
): MetricDef[] {
  return [
    { id: `${prefix}.rps`, workload, label, unit: 'req/s', better: 'higher', ...more.rps },
    { id: `${prefix}.p99`, workload, label: `${label}: p99 latency`, unit: 'ms', better: 'lower', ...more.p99 },
  ];
}

/** Records a manifest load under `<prefix>.rps` and `<prefix>.p99` (see manifestLoadMetrics), and logs it. */
export function recordManifestLoad(
  ctx: BenchContext,
  prefix: string,
  srv: Server,
  rep: number,
  what: string,
  r: LoadResult,
  extra: Record<string, unknown> = {},
): void {
  ctx.results.record(`${prefix}.rps`, srv.kind, r.requestsPerSec);
  ctx.results.record(`${prefix}.p99`, srv.kind, r.p99Ms);
  ctx.results.note(`${prefix}.rps`, `load generator: ${r.generator}`);
  ctx.results.detail(`${prefix}.rps`, srv.kind, { rep, server: srv.name, generator: r.generator, requests: r.requests, seconds: ctx.opts.duration, ...extra });
  ctx.log(`  ${what}: ${r.requestsPerSec.toFixed(0)} req/s, p99 ${r.p99Ms.toFixed(1)} ms (${r.generator}, ${r.requests} requests)`);
}

export function manifestWorkload(opts: Options): Workload {
  const metrics: MetricDef[] = [];
  for (const method of ['HEAD', 'GET'] as const) {
    const m = method.toLowerCase();
    metrics.push(
      ...manifestLoadMetrics(`manifest.${m}`, 'manifest', `manifest ${method} by tag, ${CONNECTIONS} conns`, {
        rps: { target: { kind: 'ratio', min: 3 } },
        p99: { label: `manifest ${method} p99 latency` },
      }),
    );
  }
  return {
    name: 'manifest',
    metrics,
    setup: async (ctx, srv) => {
      await ctx.smallImage(srv);
      // a short warm-up, unrecorded
      await manifestLoad(ctx, srv, 'GET', 1);
    },
    rep: eachServer(async (ctx, srv, rep) => {
      for (const method of ['HEAD', 'GET'] as const) {
        const r = await manifestLoad(ctx, srv, method, opts.duration);
        recordManifestLoad(ctx, `manifest.${method.toLowerCase()}`, srv, rep, `${srv.label} ${method}`, r);
      }
    }),
  };
}

export function smallBlobsWorkload(): Workload {
  return {
    name: 'small',
    metrics: [
      {
        id: 'small.push',
        workload: 'small',
        label: `${SMALL_BLOBS.toLocaleString('en-US')} × 4 KiB blob pushes, ${WRITERS} conc.`,
        unit: 'blobs/s',
        better: 'higher',
        target: { kind: 'ratio', min: 2 },
      },
    ],
    rep: eachServer(async (ctx, srv, rep) => {
      const blobs = Array.from({ length: SMALL_BLOBS }, () => {
        const data = randomBytes(SMALL_BLOB_SIZE);
        return { data, digest: sha256(data), size: data.length };
      });
      const agent = keepAliveAgent(WRITERS);
      try {
        const repo = `bench/small-r${rep}`;
        const { ms } = await timed(() => forEachConcurrent(blobs.length, WRITERS, (i) => pushMonolithic(srv, repo, blobs[i]!, agent)));
        const rate = blobs.length / (ms / 1000);
        ctx.results.record('small.push', srv.kind, rate);
        ctx.results.detail('small.push', srv.kind, { rep, ms, blobs: blobs.length });
        ctx.log(`  ${srv.label}: ${rate.toFixed(0)} blobs/s`);
      } finally {
        agent.destroy();
      }
    }),
  };
}

/**
 * Up to LISTINGS sequential calls of `once`, each returning the milliseconds its requests took;
 * stops early, with at least 3 samples, once LISTING_BUDGET_MS have passed. Returns the samples.
 */
async function listingLatencies(once: () => Promise<number>): Promise<number[]> {
  const samples: number[] = [];
  const started = performance.now();
  while (samples.length < LISTINGS) {
    samples.push(await once());
    if (samples.length >= 3 && performance.now() - started > LISTING_BUDGET_MS) break;
  }
  return samples;
}

/** A GET timed from the request to the last byte of its answer (not the client's parsing). */
async function timedGet(url: string, agent: Agent): Promise<{ ms: number; res: Response }> {
  const { ms, result } = await timed(() => request(url, { method: 'GET', agent }));
  return { ms, res: result };
}

function recordListing(ctx: BenchContext, id: string, srv: Server, rep: number, samples: number[], extra: Record<string, unknown>): number {
  const med = median(samples);
  ctx.results.record(id, srv.kind, med);
  ctx.results.detail(id, srv.kind, { rep, requestMs: samples, ...extra });
  const counts = (ctx.results.detailsOf(id)[srv.kind] ?? []).map((d) => ((d as { requestMs: number[] }).requestMs ?? []).length);
  if (counts.some((c) => c < LISTINGS)) {
    ctx.results.note(
      id,
      `${srv.label}: medians of ${counts.join(', ')} requests in its repetitions, not ${LISTINGS} (a measurement stops after ${LISTING_BUDGET_MS / 1000} s)`,
      `${srv.kind}-budget`,
    );
  }
  return med;
}

/**
 * The full listing at `path`, every page followed: records the median time of its requests
 * under `id` (noting when it came in pages) after `check` has accepted the entries.
 */
async function measureFullListing(
  ctx: BenchContext,
  id: string,
  srv: Server,
  rep: number,
  path: string,
  key: 'tags' | 'repositories',
  agent: Agent,
  check: (items: string[]) => void,
): Promise<number> {
  let pages = 0;
  const samples = await listingLatencies(async () => {
    const all = await listAll(srv, path, key, agent);
    check(all.items);
    pages = all.pages;
    return all.ms;
  });
  const ms = recordListing(ctx, id, srv, rep, samples, { pages });
  if (pages > 1) ctx.results.note(id, `${srv.label}: the full list came in ${pages} pages (Link followed)`);
  return ms;
}

/** The first page of 100 at `path`: records its median time under `id`, noting a server that answers more. */
async function measureFirstPage(
  ctx: BenchContext,
  id: string,
  srv: Server,
  rep: number,
  path: string,
  key: 'tags' | 'repositories',
  agent: Agent,
): Promise<{ ms: number; count: number }> {
  const url = `${srv.base}${path}?n=100`;
  let count = 0;
  const samples = await listingLatencies(async () => {
    const { ms, res } = await timedGet(url, agent);
    const entries = listingEntries(srv, res, url, key);
    if (entries.length < 100) throw new BenchError(`${srv.label}: GET ${url}: ${entries.length} ${key}, expected at least 100`);
    count = entries.length;
    return ms;
  });
  const ms = recordListing(ctx, id, srv, rep, samples, { entries: count });
  if (count > 100) ctx.results.note(id, `${srv.label} ignores n=100 and answers all ${count} ${key}`);
  return { ms, count };
}

export function tagName(i: number): string {
  return `t${String(i).padStart(5, '0')}`;
}

function expectExactly(srv: Server, what: string, got: string[], expected: ReadonlySet<string>): void {
  const seen = new Set(got);
  const missing = [...expected].filter((t) => !seen.has(t));
  if (got.length !== expected.size || seen.size !== got.length || missing.length > 0) {
    throw new BenchError(
      `${srv.label}: ${what}: ${got.length} entries (${seen.size} distinct), expected exactly ${expected.size}; missing e.g. ${missing.slice(0, 5).join(', ') || 'none'}`,
    );
  }
}

/** `tagCount`: how many tags it makes and lists (TAG_COUNT unless --listing-count says otherwise). */
export function tagsWorkload(tagCount = TAG_COUNT): Workload {
  const expected = new Set(Array.from({ length: tagCount }, (_, i) => tagName(i)));
  const n = tagCount.toLocaleString('en-US');
  return {
    name: 'tags',
    metrics: [
      { id: 'tags.push', workload: 'tags', label: `tagging ${n} tags, ${WRITERS} conc.`, unit: 'tags/s', better: 'higher' },
      { id: 'tags.full', workload: 'tags', label: `tag list, all ${n}`, unit: 'ms', better: 'lower', target: { kind: 'ratio', min: 10 } },
      { id: 'tags.page', workload: 'tags', label: 'tag list, first page n=100', unit: 'ms', better: 'lower', target: { kind: 'ratio', min: 10 } },
    ],
    rep: eachServer(async (ctx, srv, rep) => {
      const image = await ctx.smallImage(srv);
      const repo = `bench/tags-r${rep}`;
      const agent = keepAliveAgent(WRITERS);
      try {
        for (const blob of [image.config, image.layer]) {
          await pushMonolithic(srv, repo, { digest: blob.digest, size: blob.data.length, data: blob.data }, agent);
        }
        const { ms } = await timed(() =>
          forEachConcurrent(tagCount, WRITERS, (i) => putManifest(srv, repo, tagName(i), image.manifest, OCI_MANIFEST, agent)),
        );
        const rate = tagCount / (ms / 1000);
        ctx.results.record('tags.push', srv.kind, rate);
        ctx.results.detail('tags.push', srv.kind, { rep, ms, tags: tagCount });

        const path = `/v2/${repo}/tags/list`;
        const fullMs = await measureFullListing(ctx, 'tags.full', srv, rep, path, 'tags', agent, (items) =>
          expectExactly(srv, `GET ${path} (all pages)`, items, expected),
        );
        const { ms: pageMs, count } = await measureFirstPage(ctx, 'tags.page', srv, rep, path, 'tags', agent);
        ctx.log(`  ${srv.label}: ${rate.toFixed(0)} tags/s; full list ${fullMs.toFixed(1)} ms; n=100 ${pageMs.toFixed(2)} ms (${count} tags)`);
      } finally {
        agent.destroy();
      }
    }),
  };
}

export function repoName(i: number): string {
  return `bench/cat/r${String(i).padStart(5, '0')}`;
}

/** `count`: how many repositories it makes (REPO_COUNT unless --listing-count says otherwise). */
export function catalogWorkload(count = REPO_COUNT): Workload {
  const expected = Array.from({ length: count }, (_, i) => repoName(i));
  const n = count.toLocaleString('en-US');
  return {
    name: 'catalog',
    metrics: [
      { id: 'catalog.setup', workload: 'catalog', label: `creating ${n} repos (mount+manifest)`, unit: 's', better: 'lower', once: true },
      { id: 'catalog.full', workload: 'catalog', label: `_catalog, all of ≥${n} repos`, unit: 'ms', better: 'lower', target: { kind: 'ratio', min: 10 } },
      { id: 'catalog.page', workload: 'catalog', label: '_catalog, first page n=100', unit: 'ms', better: 'lower', target: { kind: 'ratio', min: 10 } },
    ],
    setup: async (ctx, srv) => {
      const image = await ctx.smallImage(srv);
      const agent = keepAliveAgent(WRITERS);
      let pushedInstead = 0;
      try {
        ctx.log(`  ${srv.label}: creating ${n} repositories`);
        const { ms } = await timed(() =>
          forEachConcurrent(count, WRITERS, async (i) => {
            const repo = expected[i]!;
            for (const blob of [image.config, image.layer]) {
              if (!(await mountBlob(srv, repo, MANIFEST_REPO, blob, agent))) pushedInstead++;
            }
            await putManifest(srv, repo, 'latest', image.manifest, OCI_MANIFEST, agent);
          }),
        );
        ctx.results.record('catalog.setup', srv.kind, ms / 1000);
        if (pushedInstead > 0) ctx.results.note('catalog.setup', `${srv.label} answered 202 to ${pushedInstead} mounts; those blobs were pushed`);
        ctx.log(`  ${srv.label}: ${(ms / 1000).toFixed(1)} s`);
      } finally {
        agent.destroy();
      }
    },
    rep: eachServer(async (ctx, srv, rep) => {
      const agent = keepAliveAgent(1);
      try {
        const fullMs = await measureFullListing(ctx, 'catalog.full', srv, rep, '/v2/_catalog', 'repositories', agent, (items) => {
          const have = new Set(items);
          const missing = expected.filter((r) => !have.has(r));
          if (items.length < count || missing.length > 0) {
            throw new BenchError(`${srv.label}: GET /v2/_catalog (all pages): ${items.length} repositories; missing e.g. ${missing.slice(0, 5).join(', ')}`);
          }
        });
        const { ms: pageMs } = await measureFirstPage(ctx, 'catalog.page', srv, rep, '/v2/_catalog', 'repositories', agent);
        ctx.log(`  ${srv.label}: full ${fullMs.toFixed(1)} ms; n=100 ${pageMs.toFixed(2)} ms`);
      } finally {
        agent.destroy();
      }
    }),
  };
}

/** Pushes the small image to bench/manifest:latest. */
export async function setupSmallImage(srv: Server, image: SmallImage, agent: Agent): Promise<void> {
  await pushSmallImage(srv, MANIFEST_REPO, 'latest', image, agent);
}

/** Which generator each manifest method will use, for the report. */
export function manifestGenerators(opts: Options): string {
  return `HEAD: ${generatorFor('HEAD', opts.load)}, GET: ${generatorFor('GET', opts.load)}`;
}
