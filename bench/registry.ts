// The registry operations the workloads time, each checking the server's answers.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Agent } from 'node:http';
import {
  BenchError,
  addQuery,
  describe,
  expectStatus,
  header,
  nextLink,
  request,
  requireHeader,
  resolveLocation,
  type RequestOptions,
  type Response,
} from './http.js';
import { run } from './proc.js';
import type { Server } from './servers.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
const OCTETS = 'application/octet-stream';

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** A request carrying the server's credentials (Server.authorization), when it wants some. */
function send(srv: Server, url: string, options: RequestOptions): Promise<Response> {
  if (srv.authorization === undefined) return request(url, options);
  return request(url, { ...options, headers: { authorization: srv.authorization, ...options.headers } });
}

/** curl's arguments for the server's credentials. */
function curlAuth(srv: Server): string[] {
  return srv.authorization === undefined ? [] : ['-H', `Authorization: ${srv.authorization}`];
}

/** Big transfers: minutes without progress would mean a stuck server. */
const BIG_TIMEOUT_MS = 120_000;

/** POST /v2/<repo>/blobs/uploads/ → 202 with a Location, which is returned absolute. */
export async function startUpload(srv: Server, repo: string, agent: Agent): Promise<string> {
  const url = `${srv.base}/v2/${repo}/blobs/uploads/`;
  const res = await send(srv, url, { method: 'POST', agent });
  expectStatus(res, 202, `${srv.label}: POST ${url}`);
  return resolveLocation(requireHeader(res, 'location', `${srv.label}: POST ${url}`), url);
}

/** Checks a blob commit: 201 and the digest echoed back. */
function expectCommitted(srv: Server, res: Response, digest: string, what: string): void {
  expectStatus(res, 201, `${srv.label}: ${what}`);
  const echoed = header(res, 'docker-content-digest');
  if (echoed !== undefined && echoed !== digest) {
    throw new BenchError(`${srv.label}: ${what}: Docker-Content-Digest ${echoed}, expected ${digest}:\n${describe(res)}`);
  }
}

/**
 * Big transfers with curl rather than Node: a client in C leaves more of the two cores to the
 * server it measures, the same for both servers. Returns the status, the bytes moved and the
 * Docker-Content-Digest answered.
 */
async function curl(args: string[], what: string): Promise<{ status: number; bytes: number; digest: string }> {
  const ran = await run(
    'curl',
    ['-sS', '--max-time', String(BIG_TIMEOUT_MS / 1000), '-o', '/dev/null', '-w', '%{http_code} %{size_upload} %{size_download} %header{docker-content-digest}', ...args],
    { timeoutMs: BIG_TIMEOUT_MS + 10_000, allowFailure: true },
  );
  const [status, up, down, digest] = ran.stdout.trim().split(' ');
  if (ran.code !== 0 || status === undefined) throw new BenchError(`${what}: curl exited ${ran.code}: ${ran.stderr.trim()}`);
  return { status: Number(status), bytes: Math.max(Number(up), Number(down)), digest: digest ?? '' };
}

/**
 * A blob in two requests: POST, then PUT ?digest= with the whole body (a buffer or a file).
 * With `useCurl`, a file is sent by curl.
 */
export async function pushMonolithic(
  srv: Server,
  repo: string,
  blob: { digest: string; size: number; data?: Buffer; file?: string },
  agent: Agent,
  useCurl = false,
): Promise<void> {
  const location = await startUpload(srv, repo, agent);
  const url = addQuery(location, 'digest', blob.digest);
  const file = blob.file;
  if (useCurl && file !== undefined) {
    const what = `${srv.label}: PUT ${url} (${blob.size} bytes, curl)`;
    const sent = await curl([...curlAuth(srv), '-X', 'PUT', '-H', `Content-Type: ${OCTETS}`, '-T', file, url], what);
    if (sent.status !== 201 || sent.bytes !== blob.size || (sent.digest !== '' && sent.digest !== blob.digest)) {
      throw new BenchError(`${what}: HTTP ${sent.status} after ${sent.bytes} bytes, digest ${sent.digest || 'none'}; expected 201 and ${blob.digest}`);
    }
    return;
  }
  const body = blob.data ?? (file ? () => createReadStream(file, { highWaterMark: 1024 * 1024 }) : undefined);
  if (body === undefined) throw new Error('pushMonolithic: no data');
  const res = await send(srv, url, {
    method: 'PUT',
    agent,
    headers: { 'content-type': OCTETS, 'content-length': blob.size },
    body,
    timeoutMs: BIG_TIMEOUT_MS,
  });
  expectCommitted(srv, res, blob.digest, `PUT ${url} (${blob.size} bytes)`);
}

/**
 * A blob from a file in chunks: POST, a PATCH per chunk (Content-Range start-end, inclusive)
 * to the latest Location, then PUT ?digest= with no body.
 */
export async function pushChunked(
  srv: Server,
  repo: string,
  blob: { digest: string; size: number; file: string },
  chunkSize: number,
  agent: Agent,
): Promise<number> {
  let location = await startUpload(srv, repo, agent);
  let chunks = 0;
  // Each chunk is read into one reused buffer and sent as one write: the lightest Node client.
  const buffer = Buffer.allocUnsafeSlow(Math.min(chunkSize, blob.size));
  const fh = await open(blob.file, 'r');
  try {
    for (let start = 0; start < blob.size; start += chunkSize) {
      const end = Math.min(blob.size, start + chunkSize) - 1;
      const { bytesRead } = await fh.read(buffer, 0, end - start + 1, start);
      if (bytesRead !== end - start + 1) throw new Error(`${blob.file}: short read at ${start}`);
      const res = await send(srv, location, {
        method: 'PATCH',
        agent,
        headers: { 'content-type': OCTETS, 'content-range': `${start}-${end}` },
        body: buffer.subarray(0, bytesRead),
        timeoutMs: BIG_TIMEOUT_MS,
      });
      const what = `${srv.label}: PATCH ${location} (bytes ${start}-${end})`;
      expectStatus(res, 202, what);
      const range = requireHeader(res, 'range', what);
      if (range !== `0-${end}`) throw new BenchError(`${what}: Range ${range}, expected 0-${end}:\n${describe(res)}`);
      location = resolveLocation(requireHeader(res, 'location', what), location);
      chunks++;
    }
  } finally {
    await fh.close();
  }
  const url = addQuery(location, 'digest', blob.digest);
  const res = await send(srv, url, { method: 'PUT', agent, timeoutMs: BIG_TIMEOUT_MS });
  expectCommitted(srv, res, blob.digest, `PUT ${url} (closing a chunked upload)`);
  return chunks;
}

/** GET of a blob, its body counted and dropped; checks the byte count. With `useCurl`, curl fetches it. */
export async function pullBlob(srv: Server, repo: string, digest: string, size: number, agent: Agent, useCurl = false): Promise<void> {
  const url = `${srv.base}/v2/${repo}/blobs/${digest}`;
  if (useCurl) {
    const got = await curl([...curlAuth(srv), url], `${srv.label}: GET ${url} (curl)`);
    if (got.status !== 200 || got.bytes !== size) {
      throw new BenchError(`${srv.label}: GET ${url} (curl): HTTP ${got.status} with ${got.bytes} bytes, expected 200 with ${size}`);
    }
    return;
  }
  const res = await send(srv, url, { method: 'GET', agent, discard: true, timeoutMs: BIG_TIMEOUT_MS });
  expectStatus(res, 200, `${srv.label}: GET ${url}`);
  if (res.bytes !== size) throw new BenchError(`${srv.label}: GET ${url}: ${res.bytes} bytes, expected ${size}:\n${describe(res)}`);
}

/** PUT of a manifest under a tag (or digest); checks 201 and the digest the server gives. */
export async function putManifest(srv: Server, repo: string, reference: string, manifest: Buffer, mediaType: string, agent: Agent): Promise<void> {
  const url = `${srv.base}/v2/${repo}/manifests/${reference}`;
  const res = await send(srv, url, { method: 'PUT', agent, headers: { 'content-type': mediaType }, body: manifest });
  const what = `${srv.label}: PUT ${url}`;
  expectStatus(res, 201, what);
  const digest = sha256(manifest);
  const echoed = requireHeader(res, 'docker-content-digest', what);
  if (echoed !== digest) throw new BenchError(`${what}: Docker-Content-Digest ${echoed}, expected ${digest}:\n${describe(res)}`);
}

/** A cross-repository mount; when the server answers 202 (no mount) the blob is pushed instead. Returns whether it mounted. */
export async function mountBlob(srv: Server, repo: string, from: string, blob: { digest: string; data: Buffer }, agent: Agent): Promise<boolean> {
  const url = `${srv.base}/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(blob.digest)}&from=${encodeURIComponent(from)}`;
  const res = await send(srv, url, { method: 'POST', agent });
  const what = `${srv.label}: POST ${url}`;
  expectStatus(res, [201, 202], what);
  if (res.status === 201) return true;
  const location = resolveLocation(requireHeader(res, 'location', what), url);
  const put = addQuery(location, 'digest', blob.digest);
  const done = await send(srv, put, { method: 'PUT', agent, headers: { 'content-type': OCTETS }, body: blob.data });
  expectCommitted(srv, done, blob.digest, `PUT ${put}`);
  return false;
}

/** A small image: a config blob, one layer, and its OCI manifest. */
export interface SmallImage {
  config: { digest: string; data: Buffer };
  layer: { digest: string; data: Buffer };
  manifest: Buffer;
  manifestDigest: string;
}

export function makeSmallImage(layer: Buffer, label: string): SmallImage {
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: { Labels: { 'org.ocireg.bench': label } },
      rootfs: { type: 'layers', diff_ids: [sha256(layer)] },
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: [{ mediaType: OCI_LAYER, digest: sha256(layer), size: layer.length }],
    }),
  );
  return {
    config: { digest: sha256(config), data: config },
    layer: { digest: sha256(layer), data: layer },
    manifest,
    manifestDigest: sha256(manifest),
  };
}

/** Pushes the image's blobs and its manifest under `tag`, then reads the manifest back to check it. */
export async function pushSmallImage(srv: Server, repo: string, tag: string, image: SmallImage, agent: Agent): Promise<void> {
  for (const blob of [image.config, image.layer]) {
    await pushMonolithic(srv, repo, { digest: blob.digest, size: blob.data.length, data: blob.data }, agent);
  }
  await putManifest(srv, repo, tag, image.manifest, OCI_MANIFEST, agent);
  const url = `${srv.base}/v2/${repo}/manifests/${tag}`;
  const res = await send(srv, url, { method: 'GET', agent, headers: { accept: OCI_MANIFEST } });
  expectStatus(res, 200, `${srv.label}: GET ${url}`);
  if (!res.body.equals(image.manifest) || header(res, 'docker-content-digest') !== image.manifestDigest) {
    throw new BenchError(`${srv.label}: GET ${url} did not give back the manifest pushed (${image.manifestDigest}):\n${describe(res)}`);
  }
}

/**
 * A listing (tags/list or _catalog), following Link rel="next" until the end. Returns every
 * entry of `key` and the number of pages.
 */
export async function listAll(
  srv: Server,
  path: string,
  key: 'tags' | 'repositories',
  agent: Agent,
  maxPages = 100_000,
): Promise<{ items: string[]; pages: number; ms: number }> {
  const items: string[] = [];
  let url: string | undefined = `${srv.base}${path}`;
  let pages = 0;
  let ms = 0;
  while (url !== undefined) {
    if (pages >= maxPages) throw new BenchError(`${srv.label}: ${path}: still a next page after ${maxPages} pages`);
    // Only the exchange is timed; parsing and checking the page are the client's work.
    const started = performance.now();
    const res = await send(srv, url, { method: 'GET', agent, timeoutMs: 120_000 });
    ms += performance.now() - started;
    items.push(...listingEntries(srv, res, url, key));
    pages++;
    const next = nextLink(header(res, 'link'));
    url = next === undefined ? undefined : resolveLocation(next, url);
  }
  return { items, pages, ms };
}

/** The entries of one listing page; throws unless it is a 200 with a JSON array under `key`. */
export function listingEntries(srv: Server, res: Response, url: string, key: 'tags' | 'repositories'): string[] {
  const what = `${srv.label}: GET ${url}`;
  expectStatus(res, 200, what);
  let parsed: unknown;
  try {
    parsed = JSON.parse(res.body.toString('utf8'));
  } catch {
    throw new BenchError(`${what}: not JSON:\n${describe(res)}`);
  }
  const list = (parsed as Record<string, unknown> | null)?.[key];
  if (list === null && key === 'tags') return [];
  if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) throw new BenchError(`${what}: no "${key}" array:\n${describe(res)}`);
  return list as string[];
}
