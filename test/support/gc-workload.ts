// The garbage collector's concurrency workload, shared by the one-node test
// (test/maintenance/gc/concurrency.test.ts) and the two-node one (test/cluster/gc.test.ts): writers
// push images that share layers over plain HTTP, as docker does, delete some of their images and
// push some of those again, while the collector runs with no grace window. A ledger says which
// images must be whole at the end and which must be gone; the checks say what is not so.
//
// A blob no manifest references yet is kept only for the grace window after its upload: a client
// slower than that (some pushes here wait `slowPushMs` before their manifest) may lawfully see it
// collected before the manifest that uses it. The manifest PUT is then refused with
// MANIFEST_BLOB_UNKNOWN naming it, and the writer uploads it again and retries, as a client is
// expected to. Every other refusal is a bug.
import { createHash } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import { getDigest, send, sleep, testBytes, type SocketResponse } from './socket.js';

export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
const CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json';
const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar';

/** The layers every writer draws from (1 or 2 per image): what deletions and re-uploads race over. */
const SHARED_LAYERS = [testBytes(32 * 1024, 7001), testBytes(48 * 1024, 7002), testBytes(64 * 1024, 7003)];
/** Repositories every writer pushes to, besides one of its own. */
const SHARED_REPOSITORIES = 3;
/** Manifest PUTs refused with MANIFEST_BLOB_UNKNOWN that one push recovers from, at most. */
const MAX_MANIFEST_RETRIES = 5;
/** After each push, the chances that the writer deletes one of its live images, and pushes a deleted one again. */
const DELETE_CHANCE = 0.5;
const REPUSH_CHANCE = 0.4;
/** The chance that a push waits `slowPushMs` between its blobs and its manifest. */
const SLOW_CHANCE = 0.25;

export interface WorkloadOptions {
  /** Base URLs (`http://127.0.0.1:<port>`); each request goes to the next one, round robin. */
  readonly bases: readonly string[];
  /** The first component of every repository name. */
  readonly prefix: string;
  readonly writers?: number;
  readonly rounds?: number;
  readonly requestTimeoutMs?: number;
  /** How long a slow push waits between its blobs and its manifest (0: none is slow). */
  readonly slowPushMs?: number;
}

export interface Blob {
  readonly digest: string;
  readonly bytes: Buffer;
}

/**
 * One image of the ledger. `live`: acknowledged (201) and not deleted since; `dead`: deleted and
 * not pushed again; `unknown`: a request of its last push or deletion failed, so nothing is said.
 */
export interface LedgerImage {
  readonly writer: number;
  readonly round: number;
  readonly repo: string;
  readonly tag: string;
  readonly manifest: Blob;
  readonly config: Blob;
  /** The layer only this image has. */
  readonly unique: Blob;
  readonly shared: readonly Blob[];
  state: 'new' | 'live' | 'dead' | 'unknown';
  pushes: number;
  deletions: number;
}

export interface WorkloadResult {
  readonly images: readonly LedgerImage[];
  /** Requests made, by operation. */
  readonly requests: Readonly<Record<string, number>>;
  /** Every answer that was not a 2xx, by "operation status code". */
  readonly answers: Readonly<Record<string, number>>;
  /** MANIFEST_BLOB_UNKNOWN refusals that the push then overcame (re-uploading and retrying). */
  readonly recovered: number;
  /** What made a writer give up on an image (an unexpected answer, a timeout...). */
  readonly errors: readonly string[];
  /** Pushes that waited `slowPushMs` before their manifest. */
  readonly slowPushes: number;
  readonly durationMs: number;
}

/** The answers a writer may see and recover from; anything else in `answers` is a failure. */
export const BLOB_HEAD_404 = 'blob HEAD 404';
export const MANIFEST_BLOB_UNKNOWN = 'manifest PUT 400 MANIFEST_BLOB_UNKNOWN';

/** Runs the writers to the end (each writer's failures are recorded, not thrown) and returns what happened. */
export async function runWorkload(options: WorkloadOptions): Promise<WorkloadResult> {
  const started = Date.now();
  const client = new CountingClient(options.bases, options.requestTimeoutMs ?? 30_000);
  const writers = options.writers ?? 8;
  const rounds = options.rounds ?? 10;
  const images: LedgerImage[] = [];
  const errors: string[] = [];
  await Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      const own = Array.from({ length: rounds }, (_, r) => makeImage(options.prefix, w, r));
      images.push(...own);
      await new Writer(client, w, own, errors, options.slowPushMs ?? 0).run();
    }),
  );
  return {
    images,
    requests: Object.fromEntries(client.requests),
    answers: Object.fromEntries(client.answers),
    recovered: client.recovered,
    errors,
    slowPushes: client.slowPushes,
    durationMs: Date.now() - started,
  };
}

/** The answers in `result` that no writer may see (anything but blob HEAD 404s and recovered MANIFEST_BLOB_UNKNOWNs). */
export function unexpectedAnswers(result: WorkloadResult): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [key, count] of Object.entries(result.answers)) {
    if (key === BLOB_HEAD_404) continue;
    if (key === MANIFEST_BLOB_UNKNOWN && count === result.recovered) continue;
    out[key] = count;
  }
  return out;
}

/**
 * What makes a run prove nothing or fail, as lines (none for a sound run): a writer that gave up,
 * an answer no client recovers from, a run without both live and deleted images at the end,
 * without an image pushed again, or without a refusal recovered from (the race never happened).
 */
export function workloadProblems(result: WorkloadResult): string[] {
  const problems = [...result.errors.map((e) => `gave up: ${e}`)];
  const unexpected = unexpectedAnswers(result);
  if (Object.keys(unexpected).length > 0) problems.push(`answers no client recovers from: ${JSON.stringify(unexpected)}`);
  const states = new Set(result.images.map((i) => i.state));
  if (!states.has('live') || !states.has('dead')) problems.push(`images at the end are ${[...states].join(', ')}: not both live and dead`);
  if (!result.images.some((i) => i.pushes > 1)) problems.push('no image was pushed again after its deletion');
  if (result.recovered === 0) problems.push('no manifest PUT was refused and then recovered from');
  return problems;
}

/** A few lines for the test's output: the ledger, the requests, every non-2xx answer. */
export function describeWorkload(label: string, result: WorkloadResult): string {
  const states = { live: 0, dead: 0, unknown: 0, new: 0 };
  for (const image of result.images) states[image.state]++;
  const pushes = result.images.reduce((n, i) => n + i.pushes, 0);
  const deletions = result.images.reduce((n, i) => n + i.deletions, 0);
  const again = result.images.filter((i) => i.pushes > 1).length;
  return [
    `${label}: ${result.images.length} images in ${result.durationMs} ms: ${pushes} pushes acknowledged ` +
      `(${again} images pushed again, ${result.slowPushes} pushes slow), ${deletions} deletions`,
    `  at the end: ${states.live} live, ${states.dead} dead, ${states.unknown} unknown`,
    `  requests: ${JSON.stringify(result.requests)}`,
    `  non-2xx answers: ${JSON.stringify(result.answers)} (MANIFEST_BLOB_UNKNOWN recovered: ${result.recovered})`,
    ...(result.errors.length > 0 ? [`  errors: ${result.errors.join('; ')}`] : []),
  ].join('\n');
}

/** Whether the store holds an object, by store key (`blobs/sha256/ab/abcd...`, `repositories/...`). */
export type StoreProbe = (key: string) => Promise<boolean>;

/**
 * Every live image, through every base: the manifest by tag and by digest, byte for byte, and
 * every blob, streamed through SHA-256 (its digest and length as the manifest says). Returns the problems.
 */
export async function checkLive(images: readonly LedgerImage[], bases: readonly string[], timeoutMs = 30_000): Promise<string[]> {
  const problems: string[] = [];
  for (const base of bases) {
    const seen = new Set<string>();
    for (const image of images.filter((i) => i.state === 'live')) {
      for (const reference of [image.tag, image.manifest.digest]) {
        const res = await send(new URL(`/v2/${image.repo}/manifests/${reference}`, base), {
          method: 'GET',
          headers: { accept: MANIFEST_TYPE },
          timeoutMs,
        });
        if (res.status !== 200 || !res.body.equals(image.manifest.bytes)) {
          problems.push(`${base} GET ${image.repo}:${reference} (${image.tag}): ${res.status} ${describeBody(res)}`);
        }
      }
      for (const blob of [image.config, ...image.shared, image.unique]) {
        const key = `${image.repo}@${blob.digest}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const got = await getDigest(new URL(`/v2/${image.repo}/blobs/${blob.digest}`, base), {}, timeoutMs);
        if (got.status !== 200 || got.digest !== blob.digest || got.length !== blob.bytes.length) {
          problems.push(`${base} GET blob ${key} (${image.tag}): ${got.status}, ${got.length} bytes, ${got.digest}`);
        }
      }
    }
  }
  return problems;
}

/**
 * Every dead image's own content is gone: from the store (its manifest's bytes, config and unique
 * layer, their links in its repository, its manifest and tag links), and from the index through
 * every base (the manifest by tag and digest, the blobs in its repository: 404). Content that a
 * live image (or one whose fate is unknown) holds too is left out. Returns the problems.
 */
export async function checkDead(
  images: readonly LedgerImage[],
  bases: readonly string[],
  stored: StoreProbe,
  timeoutMs = 30_000,
): Promise<string[]> {
  const kept = new Set<string>();
  for (const image of images.filter((i) => i.state === 'live' || i.state === 'unknown')) {
    for (const blob of [image.manifest, image.config, image.unique, ...image.shared]) kept.add(blob.digest);
  }
  const problems: string[] = [];
  for (const image of images.filter((i) => i.state === 'dead')) {
    const own = [image.manifest, image.config, image.unique].filter((b) => !kept.has(b.digest));
    const storeKeys = [
      ...own.map((b) => blobKey(b.digest)),
      ...own.filter((b) => b !== image.manifest).map((b) => layerLinkKey(image.repo, b.digest)),
      manifestLinkKey(image.repo, image.manifest.digest),
      `repositories/${image.repo}/_tags/${image.tag}`,
    ];
    for (const key of storeKeys) if (await stored(key)) problems.push(`${image.repo}:${image.tag}: the store still holds ${key}`);
    for (const base of bases) {
      for (const reference of [image.tag, image.manifest.digest]) {
        const res = await send(new URL(`/v2/${image.repo}/manifests/${reference}`, base), { method: 'HEAD', headers: { accept: MANIFEST_TYPE }, timeoutMs });
        if (res.status !== 404) problems.push(`${base} HEAD ${image.repo}:${reference} (deleted ${image.tag}): ${res.status}`);
      }
      for (const blob of own.filter((b) => b !== image.manifest)) {
        const res = await send(new URL(`/v2/${image.repo}/blobs/${blob.digest}`, base), { method: 'HEAD', timeoutMs });
        if (res.status !== 404) problems.push(`${base} HEAD blob ${image.repo}@${blob.digest} (deleted ${image.tag}): ${res.status}`);
      }
    }
  }
  return problems;
}

export function blobKey(digest: string): string {
  const [algorithm, hex] = splitDigest(digest);
  return `blobs/${algorithm}/${hex.slice(0, 2)}/${hex}`;
}

function layerLinkKey(repo: string, digest: string): string {
  const [algorithm, hex] = splitDigest(digest);
  return `repositories/${repo}/_layers/${algorithm}/${hex}`;
}

function manifestLinkKey(repo: string, digest: string): string {
  const [algorithm, hex] = splitDigest(digest);
  return `repositories/${repo}/_manifests/${algorithm}/${hex}`;
}

function splitDigest(digest: string): [string, string] {
  const at = digest.indexOf(':');
  return [digest.slice(0, at), digest.slice(at + 1)];
}

function sha256(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function blob(bytes: Buffer): Blob {
  return { digest: sha256(bytes), bytes };
}

/**
 * Image `round` of writer `w`: a config and a layer of its own, and 1 or 2 shared layers; in the
 * writer's repository on even rounds, in one of the shared ones on odd rounds; a tag of its own.
 */
function makeImage(prefix: string, w: number, round: number): LedgerImage {
  const first = (w + round) % SHARED_LAYERS.length;
  const shared = [SHARED_LAYERS[first]!];
  if ((w * 3 + round) % 2 === 0) shared.push(SHARED_LAYERS[(first + 1) % SHARED_LAYERS.length]!);
  const unique = blob(testBytes(8 * 1024 + w * 131 + round * 17, 8000 + w * 100 + round));
  const config = blob(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { writer: String(w), round: String(round) } } })),
  );
  const layers = [...shared.map(blob), unique];
  const manifest = blob(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST_TYPE,
        config: { mediaType: CONFIG_TYPE, digest: config.digest, size: config.bytes.length },
        layers: layers.map((l) => ({ mediaType: LAYER_TYPE, digest: l.digest, size: l.bytes.length })),
      }),
    ),
  );
  const repo = round % 2 === 0 ? `${prefix}/w${w}` : `${prefix}/shared${(w + round) % SHARED_REPOSITORIES}`;
  return { writer: w, round, repo, tag: `w${w}-r${round}`, manifest, config, unique, shared: layers.slice(0, -1), state: 'new', pushes: 0, deletions: 0 };
}

/** Requests round robin over the bases, each on a fresh connection and bounded, counted by operation and answer. */
class CountingClient {
  private next = 0;
  readonly requests = new Map<string, number>();
  readonly answers = new Map<string, number>();
  recovered = 0;
  slowPushes = 0;

  constructor(
    private readonly bases: readonly string[],
    private readonly timeoutMs: number,
  ) {}

  async call(operation: string, method: string, path: string, headers: OutgoingHttpHeaders = {}, body?: Buffer): Promise<SocketResponse> {
    const base = this.bases[this.next++ % this.bases.length]!;
    bump(this.requests, operation);
    const res = await send(new URL(path, base), { method, headers, body, timeoutMs: this.timeoutMs });
    if (res.status < 200 || res.status >= 300) bump(this.answers, `${operation} ${res.status}${codeOf(res) ? ` ${codeOf(res)}` : ''}`);
    return res;
  }
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** One writer: pushes its images in turn, and after each push may delete one and push a deleted one again. */
class Writer {
  private uploads = 0;
  private readonly random: () => number;

  constructor(
    private readonly client: CountingClient,
    private readonly w: number,
    private readonly images: readonly LedgerImage[],
    private readonly errors: string[],
    private readonly slowPushMs: number,
  ) {
    this.random = seededRandom(1 + w);
  }

  async run(): Promise<void> {
    for (const image of this.images) {
      await this.attempt(image, () => this.push(image));
      if (this.random() < DELETE_CHANCE) {
        const victim = this.pick('live');
        if (victim) await this.attempt(victim, () => this.delete(victim));
      }
      if (this.random() < REPUSH_CHANCE) {
        const again = this.pick('dead');
        if (again) await this.attempt(again, () => this.push(again));
      }
    }
  }

  private pick(state: 'live' | 'dead'): LedgerImage | undefined {
    const candidates = this.images.filter((i) => i.state === state);
    return candidates.length === 0 ? undefined : candidates[Math.floor(this.random() * candidates.length)];
  }

  /** Runs one push or deletion; a failure is recorded and leaves the image's fate unknown. */
  private async attempt(image: LedgerImage, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      image.state = 'unknown';
      this.errors.push(`writer ${this.w}, ${image.repo}:${image.tag}: ${(err as Error).message}`);
    }
  }

  /** As docker pushes: HEAD each blob, upload those the repository lacks, then the manifest (recovering from MANIFEST_BLOB_UNKNOWN). */
  private async push(image: LedgerImage): Promise<void> {
    const blobs = [image.config, ...image.shared, image.unique];
    for (const b of blobs) {
      const head = await this.client.call('blob HEAD', 'HEAD', `/v2/${image.repo}/blobs/${b.digest}`);
      if (head.status === 404) await this.upload(image.repo, b);
      else if (head.status !== 200) throw unexpected('blob HEAD', head);
    }
    if (this.slowPushMs > 0 && this.random() < SLOW_CHANCE) {
      this.client.slowPushes++;
      await sleep(this.slowPushMs);
    }
    const byDigest = new Map(blobs.map((b) => [b.digest, b]));
    for (let attempt = 0; ; attempt++) {
      const res = await this.client.call('manifest PUT', 'PUT', `/v2/${image.repo}/manifests/${image.tag}`, { 'content-type': MANIFEST_TYPE }, image.manifest.bytes);
      if (res.status === 201) {
        if (res.headers['docker-content-digest'] !== image.manifest.digest) throw new Error(`manifest PUT answered digest ${String(res.headers['docker-content-digest'])}`);
        this.client.recovered += attempt;
        image.state = 'live';
        image.pushes++;
        return;
      }
      const missing = missingBlobs(res);
      if (!missing || attempt >= MAX_MANIFEST_RETRIES) throw unexpected(`manifest PUT (attempt ${attempt + 1})`, res);
      for (const digest of missing) {
        const b = byDigest.get(digest);
        if (!b) throw unexpected('manifest PUT naming a blob the image does not have', res);
        await this.upload(image.repo, b);
      }
    }
  }

  /** Uploads a blob, monolithically (POST ?digest=) and in a session (POST, PATCH, PUT) in turn. */
  private async upload(repo: string, b: Blob): Promise<void> {
    const octets = { 'content-type': 'application/octet-stream' };
    if (this.uploads++ % 2 === 0) {
      const res = await this.client.call('upload POST ?digest', 'POST', `/v2/${repo}/blobs/uploads/?digest=${b.digest}`, octets, b.bytes);
      if (res.status !== 201) throw unexpected('upload POST ?digest', res);
      return;
    }
    const started = await this.client.call('upload POST', 'POST', `/v2/${repo}/blobs/uploads/`);
    if (started.status !== 202) throw unexpected('upload POST', started);
    const patched = await this.client.call('upload PATCH', 'PATCH', locationOf(started), { ...octets, 'content-range': `0-${b.bytes.length - 1}` }, b.bytes);
    if (patched.status !== 202) throw unexpected('upload PATCH', patched);
    const path = locationOf(patched);
    const done = await this.client.call('upload PUT', 'PUT', `${path}${path.includes('?') ? '&' : '?'}digest=${b.digest}`, { 'content-length': '0' });
    if (done.status !== 201) throw unexpected('upload PUT', done);
  }

  private async delete(image: LedgerImage): Promise<void> {
    const res = await this.client.call('manifest DELETE', 'DELETE', `/v2/${image.repo}/manifests/${image.manifest.digest}`);
    if (res.status !== 202) throw unexpected('manifest DELETE', res);
    image.state = 'dead';
    image.deletions++;
  }
}

/** The path and query of a Location header, so that the next request may go to any base. */
function locationOf(res: SocketResponse): string {
  const location = res.headers.location;
  if (!location) throw unexpected('an answer without Location', res);
  const url = new URL(location, 'http://placeholder');
  return url.pathname + url.search;
}

/** The digests a MANIFEST_BLOB_UNKNOWN refusal names, or undefined for any other answer. */
function missingBlobs(res: SocketResponse): string[] | undefined {
  if (res.status !== 400) return undefined;
  const error = errorsOf(res)[0];
  if (error?.code !== 'MANIFEST_BLOB_UNKNOWN') return undefined;
  const detail = error.detail;
  const list = Array.isArray(detail) ? detail : [detail];
  const digests = list.flatMap((d) => (typeof d === 'object' && d !== null && typeof (d as { digest?: unknown }).digest === 'string' ? [(d as { digest: string }).digest] : []));
  return digests.length > 0 ? digests : undefined;
}

function errorsOf(res: SocketResponse): Array<{ code?: string; detail?: unknown }> {
  try {
    const parsed = JSON.parse(res.body.toString('utf8')) as { errors?: Array<{ code?: string; detail?: unknown }> };
    return Array.isArray(parsed.errors) ? parsed.errors : [];
  } catch {
    return [];
  }
}

function codeOf(res: SocketResponse): string | undefined {
  return errorsOf(res)[0]?.code;
}

function unexpected(what: string, res: SocketResponse): Error {
  return new Error(`${what}: ${res.status} ${describeBody(res)}`);
}

function describeBody(res: SocketResponse): string {
  return res.body.subarray(0, 300).toString('utf8');
}

/** A small deterministic generator (mulberry32): each writer's choices are the same from run to run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
