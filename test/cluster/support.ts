// What the cluster test files share: a cluster per file (started before, stopped after, its folder
// removed), bounded HTTP requests to the balancer or to one node, and small OCI push/pull helpers.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startCluster, type Cluster, type ClusterOptions } from '../support/cluster.js';
import { send, type SocketResponse } from '../support/socket.js';

export const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';
export const CONFIG_TYPE = 'application/vnd.oci.image.config.v1+json';
export const LAYER_TYPE = 'application/vnd.oci.image.layer.v1.tar';

/**
 * Starts a cluster before the file's tests and stops it after them (removing its folder unless
 * OCIREG_CLUSTER_KEEP is set); the getter throws until it is up. Register it before other hooks.
 */
export function useCluster(
  options: Omit<ClusterOptions, 'directory'> | ((dir: string) => Promise<Omit<ClusterOptions, 'directory'>>) = {},
): () => Cluster {
  let cluster: Cluster | undefined;
  let dir: string | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ocireg-cluster-'));
    // A function prepares what the nodes need (an htpasswd file...) in the cluster's folder first.
    const resolved = typeof options === 'function' ? await options(dir) : options;
    cluster = await startCluster({ ...resolved, directory: dir });
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
    if (dir && !process.env.OCIREG_CLUSTER_KEEP) await rm(dir, { recursive: true, force: true });
    else if (dir) console.log(`cluster: kept ${dir}`);
  }, 60_000);
  return () => {
    if (!cluster) throw new Error('the cluster did not start');
    return cluster;
  };
}

/** The last test of a file: no node logged an error (pino level 50 or more). */
export function itLeavesNoErrors(get: () => Cluster): void {
  it('left no errors in any node log', () => {
    expect(get().errors()).toEqual([]);
  });
}

export interface Reply extends SocketResponse {
  /** A header as one string ('' when absent). */
  header(name: string): string;
}

/** One request on a fresh connection (no keep-alive, so through haproxy each goes to the next node), bounded. */
export async function request(
  base: string,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: Buffer | Readable; timeoutMs?: number } = {},
): Promise<Reply> {
  const res = await send(new URL(path, base), { method, headers: options.headers, body: options.body, timeoutMs: options.timeoutMs ?? 60_000 });
  return {
    ...res,
    header(name: string) {
      const value = res.headers[name.toLowerCase()];
      return Array.isArray(value) ? value.join(', ') : (value ?? '');
    },
  };
}

export function digestOf(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The path (and query) of a Location header, so that the next request can go to any node. */
export function pathOf(location: string): string {
  const url = new URL(location, 'http://placeholder');
  return url.pathname + url.search;
}

/** The end offset of a `Range: 0-<last>` header: how many bytes the upload holds. */
export function rangeEnd(range: string): number {
  const m = /^0-(\d+)$/.exec(range);
  if (!m) throw new Error(`unexpected Range header ${JSON.stringify(range)}`);
  return Number(m[1]) + 1;
}

/** POST /blobs/uploads/: the new session's path. */
export async function startUpload(base: string, repo: string, headers: Record<string, string> = {}): Promise<string> {
  const res = await request(base, 'POST', `/v2/${repo}/blobs/uploads/`, { headers });
  expect(res.status, res.body.toString()).toBe(202);
  return pathOf(res.header('location'));
}

/** PATCH of `data` at `offset` (with Content-Range); returns the reply as it is. */
export function patchChunk(base: string, path: string, data: Buffer, offset: number, headers: Record<string, string> = {}): Promise<Reply> {
  return request(base, 'PATCH', path, {
    headers: {
      'content-type': 'application/octet-stream',
      'content-range': `${offset}-${offset + data.length - 1}`,
      'content-length': String(data.length),
      ...headers,
    },
    body: data,
  });
}

/** GET of the upload: how many bytes it holds. */
export async function uploadOffset(base: string, path: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await request(base, 'GET', path, { headers });
  expect(res.status, res.body.toString()).toBe(204);
  return rangeEnd(res.header('range'));
}

/** PUT ?digest= without a body. */
export async function finishUpload(base: string, path: string, digest: string, headers: Record<string, string> = {}): Promise<Reply> {
  const sep = path.includes('?') ? '&' : '?';
  return request(base, 'PUT', `${path}${sep}digest=${encodeURIComponent(digest)}`, { headers: { 'content-length': '0', ...headers } });
}

/**
 * Pushes a blob in chunks of `chunk` bytes (POST, PATCHes, PUT), each request through `base`
 * (the balancer: so through the nodes in turn). Returns its digest.
 */
export async function pushBlob(base: string, repo: string, data: Buffer, chunk = 256 * 1024, headers: Record<string, string> = {}): Promise<string> {
  const digest = digestOf(data);
  let path = await startUpload(base, repo, headers);
  for (let offset = 0; offset < data.length; offset += chunk) {
    const res = await patchChunk(base, path, data.subarray(offset, offset + chunk), offset, headers);
    expect(res.status, res.body.toString()).toBe(202);
    path = pathOf(res.header('location'));
  }
  const done = await finishUpload(base, path, digest, headers);
  expect(done.status, done.body.toString()).toBe(201);
  expect(done.header('docker-content-digest')).toBe(digest);
  return digest;
}

export interface Image {
  config: Buffer;
  layers: Buffer[];
  manifest: Buffer;
  digest: string;
}

/** An OCI image manifest over `layers` with a small config naming `label`. */
export function makeImage(layers: Buffer[], label: string): Image {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { label } }, rootfs: { type: 'layers', diff_ids: [] } }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MANIFEST_TYPE,
      config: { mediaType: CONFIG_TYPE, digest: digestOf(config), size: config.length },
      layers: layers.map((l) => ({ mediaType: LAYER_TYPE, digest: digestOf(l), size: l.length })),
    }),
  );
  return { config, layers, manifest, digest: digestOf(manifest) };
}

/** PUT of a manifest; returns the reply as it is. */
export function putManifest(base: string, repo: string, reference: string, manifest: Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  return request(base, 'PUT', `/v2/${repo}/manifests/${reference}`, {
    headers: { 'content-type': MANIFEST_TYPE, ...headers },
    body: manifest,
  });
}

/** Pushes an image's blobs (skipping those the repository has) and its manifest under `reference`. */
export async function pushImage(base: string, repo: string, image: Image, reference: string, headers: Record<string, string> = {}): Promise<void> {
  for (const blob of [image.config, ...image.layers]) {
    const head = await request(base, 'HEAD', `/v2/${repo}/blobs/${digestOf(blob)}`, { headers });
    if (head.status !== 200) await pushBlob(base, repo, blob, 128 * 1024, headers);
  }
  const res = await putManifest(base, repo, reference, image.manifest, headers);
  expect(res.status, res.body.toString()).toBe(201);
  expect(res.header('docker-content-digest')).toBe(image.digest);
}

/** The digest a reference resolves to (HEAD), or undefined for a 404. */
export async function resolve(base: string, repo: string, reference: string, headers: Record<string, string> = {}): Promise<string | undefined> {
  const res = await request(base, 'HEAD', `/v2/${repo}/manifests/${reference}`, { headers: { accept: MANIFEST_TYPE, ...headers } });
  if (res.status === 404) return undefined;
  expect(res.status).toBe(200);
  return res.header('docker-content-digest');
}

/** tags/list of a repository ([] for an unknown one). */
export async function tagsOf(base: string, repo: string, headers: Record<string, string> = {}): Promise<string[]> {
  const res = await request(base, 'GET', `/v2/${repo}/tags/list`, { headers });
  if (res.status === 404) return [];
  expect(res.status, res.body.toString()).toBe(200);
  return (JSON.parse(res.body.toString()) as { tags: string[] | null }).tags ?? [];
}

/** Every repository of the catalog, following its pages (bounded). */
export async function catalogOf(base: string): Promise<string[]> {
  const names: string[] = [];
  let path: string | undefined = '/v2/_catalog?n=100';
  for (let page = 0; path && page < 100; page++) {
    const res = await request(base, 'GET', path);
    expect(res.status, res.body.toString()).toBe(200);
    names.push(...(JSON.parse(res.body.toString()) as { repositories: string[] }).repositories);
    const link = /<([^>]+)>/.exec(res.header('link'));
    path = link ? pathOf(link[1]!) : undefined;
  }
  return names;
}

/** GET of a blob's bytes, checked: status 200 and exactly `data`. */
export async function expectBlob(base: string, repo: string, data: Buffer, headers: Record<string, string> = {}): Promise<void> {
  const res = await request(base, 'GET', `/v2/${repo}/blobs/${digestOf(data)}`, { headers });
  expect(res.status, `${base} GET blob: ${res.body.subarray(0, 200).toString()}`).toBe(200);
  expect(res.body.length).toBe(data.length);
  expect(digestOf(res.body)).toBe(digestOf(data));
}
