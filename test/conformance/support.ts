// Black-box helpers for the conformance suite: plain HTTP against the registry under test.
// Nothing here imports from src/; every request has a timeout.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { expect, inject } from 'vitest';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar';
export const OCI_EMPTY = 'application/vnd.oci.empty.v1+json';

/** Per-request bound; a request that takes longer fails its test. */
export const REQUEST_MS = 15_000;

export const target = {
  get url(): string {
    return inject('conformanceUrl');
  },
  get deletes(): boolean {
    return inject('conformanceDeletes');
  },
  get own(): boolean {
    return inject('conformanceOwn');
  },
};

/** A repository name for one test file (or one test), under this run's namespace. */
export function repoName(...parts: string[]): string {
  return [inject('conformanceNamespace'), ...parts].join('/');
}

export interface Reply {
  status: number;
  headers: Headers;
  body: Buffer;
  /** The URL that was requested (after resolving a relative Location). */
  url: string;
}

export interface RequestOptions {
  headers?: Record<string, string>;
  body?: Buffer | string;
}

/** Resolves a path, or a Location header value (absolute or relative), against the target. */
export function resolveUrl(pathOrLocation: string): string {
  return new URL(pathOrLocation, `${target.url}/`).toString();
}

/** One HTTP request, bounded by REQUEST_MS; the whole body is read. */
export async function request(method: string, pathOrUrl: string, options: RequestOptions = {}): Promise<Reply> {
  const url = resolveUrl(pathOrUrl);
  const res = await fetch(url, {
    method,
    headers: options.headers,
    body: options.body,
    redirect: 'follow',
    signal: AbortSignal.timeout(REQUEST_MS),
  });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, headers: res.headers, body, url };
}

/** Adds (or replaces) query parameters on a Location, keeping the ones it already has. */
export function withQuery(location: string, params: Record<string, string>): string {
  const url = new URL(location, `${target.url}/`);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.toString();
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function randomBlob(size = 1024): Buffer {
  return randomBytes(size);
}

/** A syntactically valid sha256 digest of random bytes that nobody uploaded. */
export function unknownDigest(): string {
  return sha256(randomBytes(32));
}

export function randomTagSuffix(): string {
  return randomUUID().slice(0, 8);
}

/** The error codes of an error body, asserting the spec's envelope `{errors:[{code, message?, detail?}]}`. */
export function errorCodes(reply: Reply): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(reply.body.toString('utf8'));
  } catch {
    throw new Error(`expected a JSON error body, got ${reply.status} ${JSON.stringify(reply.body.toString('utf8').slice(0, 200))}`);
  }
  const errors = (parsed as { errors?: unknown }).errors;
  expect(Array.isArray(errors), `"errors" array in ${reply.body.toString('utf8').slice(0, 200)}`).toBe(true);
  const list = errors as Array<Record<string, unknown>>;
  expect(list.length).toBeGreaterThan(0);
  for (const e of list) {
    expect(typeof e.code).toBe('string');
    expect(e.code as string).toMatch(/^[A-Z_]+$/);
    if (e.message !== undefined) expect(typeof e.message).toBe('string');
  }
  return list.map((e) => e.code as string);
}

/** Asserts status and that the error envelope contains `code`. */
export function expectError(reply: Reply, status: number | number[], code: string | string[]): void {
  const statuses = Array.isArray(status) ? status : [status];
  expect(statuses, `status ${reply.status}, body ${reply.body.toString('utf8').slice(0, 300)}`).toContain(reply.status);
  const codes = errorCodes(reply);
  const wanted = Array.isArray(code) ? code : [code];
  expect(
    codes.some((c) => wanted.includes(c)),
    `one of ${wanted.join(', ')} in ${codes.join(', ')}`,
  ).toBe(true);
}

export function header(reply: Reply, name: string): string | null {
  return reply.headers.get(name);
}

/** Media type without parameters. */
export function mediaTypeOf(reply: Reply): string | undefined {
  return reply.headers.get('content-type')?.split(';')[0]?.trim().toLowerCase();
}

/** Starts an upload session; asserts 202 + Location and returns the Location as given. */
export async function startUpload(repo: string): Promise<string> {
  const res = await request('POST', `/v2/${repo}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
  expect(res.status, res.body.toString('utf8')).toBe(202);
  const location = res.headers.get('location');
  expect(location).toBeTruthy();
  return location!;
}

/** Pushes a blob with POST then PUT; asserts 201 and returns its digest. */
export async function pushBlob(repo: string, data: Buffer): Promise<string> {
  const digest = sha256(data);
  const location = await startUpload(repo);
  const res = await request('PUT', withQuery(location, { digest }), {
    headers: { 'Content-Type': 'application/octet-stream' },
    body: data,
  });
  expect(res.status, res.body.toString('utf8')).toBe(201);
  return digest;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export function descriptor(mediaType: string, data: Buffer): Descriptor {
  return { mediaType, digest: sha256(data), size: data.length };
}

export interface Image {
  config: Buffer;
  layer: Buffer;
  manifest: Buffer;
  digest: string;
}

/** Builds an image manifest (bytes as they will be pushed); optional extra top-level fields. */
export function imageManifest(config: Buffer, layers: Buffer[], extra: Record<string, unknown> = {}, configType = OCI_CONFIG): Buffer {
  const doc = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    ...('artifactType' in extra ? { artifactType: extra.artifactType } : {}),
    config: descriptor(configType, config),
    layers: layers.map((l) => descriptor(OCI_LAYER, l)),
    ...Object.fromEntries(Object.entries(extra).filter(([k]) => k !== 'artifactType')),
  };
  return Buffer.from(JSON.stringify(doc, null, 2));
}

/** Pushes the blobs of a fresh random image (not the manifest) and returns it. */
export async function pushImageBlobs(repo: string, extra: Record<string, unknown> = {}): Promise<Image> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, nonce: randomUUID() }));
  const layer = randomBlob(2048);
  await pushBlob(repo, config);
  await pushBlob(repo, layer);
  const manifest = imageManifest(config, [layer], extra);
  return { config, layer, manifest, digest: sha256(manifest) };
}

/** PUTs a manifest and returns the reply (no assertion). */
export function putManifest(repo: string, reference: string, body: Buffer, mediaType = OCI_MANIFEST): Promise<Reply> {
  return request('PUT', `/v2/${repo}/manifests/${reference}`, { headers: { 'Content-Type': mediaType }, body });
}

/** Pushes an image (blobs + manifest under `reference`); asserts 201. */
export async function pushImage(repo: string, reference: string, extra: Record<string, unknown> = {}): Promise<Image> {
  const image = await pushImageBlobs(repo, extra);
  const res = await putManifest(repo, reference, image.manifest);
  expect(res.status, res.body.toString('utf8')).toBe(201);
  return image;
}

/** The `<first>-<last>` of a Range header such as `0-99` (some registries write `bytes=0-99`). */
export function parseUploadRange(value: string | null): { start: number; end: number } | undefined {
  if (value === null) return undefined;
  const m = /^(?:bytes=)?(\d+)-(\d+)$/.exec(value.trim());
  if (!m) return undefined;
  return { start: Number(m[1]), end: Number(m[2]) };
}

export function json<T = unknown>(reply: Reply): T {
  return JSON.parse(reply.body.toString('utf8')) as T;
}
