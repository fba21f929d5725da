// Images pushed into any registry over HTTP (the OCI distribution API, with plain fetch): an upstream
// for the pull-through tests, or ours. Layers are real tars (one file of pseudo-random bytes each),
// made and uploaded as a stream in fixed-size chunks, so a 100 MiB layer costs one chunk of memory.
import { createCipheriv, createHash, randomBytes, randomUUID, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip, gunzipSync } from 'node:zlib';
import { pack as tarPack } from 'tar-stream';
import { OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, digestOf } from '../helpers.js';
import { OCI_LAYER_TAR } from '../archive/archives.js';

/** Credentials for every request: Basic, or a bearer token the caller already holds. */
export type RegistryAuth = { username: string; password: string } | { bearer: string };

export type LayerSpec =
  /** A tar holding one file, layer-N.bin (N: its place in `layers`), of `size` pseudo-random bytes (from `seed`; random by default), gzipped when asked. */
  | { size: number; seed?: string; gzip?: boolean }
  /** These bytes as the layer blob, as they are: an uncompressed tar unless `mediaType` says gzip. */
  | { bytes: Buffer; mediaType?: string };

export interface PushImageOptions {
  layers: LayerSpec[];
  auth?: RegistryAuth;
  /**
   * Also push an OCI image index listing the image for linux/amd64, and point the tag at the index
   * instead of the image manifest.
   */
  platformIndex?: boolean;
  /** Labels in the image config (a new label makes a new image over the same layers). */
  labels?: Record<string, string>;
  /** Bytes per PATCH of a layer upload (default 8 MiB): the memory a layer upload holds. */
  chunkSize?: number;
  /** Bound on each HTTP request (default 120 s). */
  timeoutMs?: number;
}

export interface PushedBlob {
  digest: string;
  size: number;
  mediaType: string;
}

export interface PushedLayer extends PushedBlob {
  /** The digest of the uncompressed tar (what the config's rootfs lists). */
  diffId: string;
}

export interface PushedImage {
  /** The image manifest's digest. */
  manifestDigest: string;
  /** The image manifest's bytes, exactly as pushed (media type OCI_MANIFEST). */
  manifest: Buffer;
  layers: PushedLayer[];
  config: PushedBlob & { bytes: Buffer };
  /** The index over the image, when `platformIndex`. */
  index?: { digest: string; bytes: Buffer };
  /** What the tag points at: the index's digest with `platformIndex`, else the manifest's. */
  tagDigest: string;
}

const DEFAULT_CHUNK_SIZE = 8 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 120_000;
/** How much pseudo-random data a layer's file is written in at a time. */
const FILL_BLOCK = 64 * 1024;

/** The Authorization header for `auth` (undefined without). */
export function authorizationOf(auth: RegistryAuth | undefined): string | undefined {
  if (!auth) return undefined;
  if ('bearer' in auth) return `Bearer ${auth.bearer}`;
  return `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}`;
}

/**
 * Pushes an OCI image (its layers, a linux/amd64 config, the manifest, and the index when asked)
 * to `baseUrl`/v2/`repo` under `tag`.
 */
export async function pushImage(baseUrl: string, repo: string, tag: string, options: PushImageOptions): Promise<PushedImage> {
  const client = new RegistryClient(baseUrl, repo, options);
  const layers: PushedLayer[] = [];
  for (const [i, spec] of options.layers.entries()) {
    layers.push('bytes' in spec ? await client.pushLayerBytes(spec.bytes, spec.mediaType ?? OCI_LAYER_TAR) : await client.pushGeneratedLayer(spec, `layer-${i}.bin`));
  }
  const configBytes = Buffer.from(
    JSON.stringify({
      architecture: 'amd64',
      os: 'linux',
      config: options.labels ? { Labels: options.labels } : {},
      rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      history: layers.map((_, i) => ({ created_by: `upstream-images layer ${i}` })),
    }),
  );
  const config = { ...(await client.pushSmallBlob(configBytes, OCI_CONFIG)), bytes: configBytes };
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    }),
  );
  const manifestDigest = digestOf(manifest);
  if (!options.platformIndex) {
    await client.putManifest(tag, manifest, OCI_MANIFEST, manifestDigest);
    return { manifestDigest, manifest, layers, config, tagDigest: manifestDigest };
  }
  await client.putManifest(manifestDigest, manifest, OCI_MANIFEST, manifestDigest);
  const indexBytes = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: manifestDigest, size: manifest.length, platform: { architecture: 'amd64', os: 'linux' } }],
    }),
  );
  const indexDigest = digestOf(indexBytes);
  await client.putManifest(tag, indexBytes, OCI_INDEX, indexDigest);
  return { manifestDigest, manifest, layers, config, index: { digest: indexDigest, bytes: indexBytes }, tagDigest: indexDigest };
}

/**
 * Points `tag` at a new image: pushImage with a fresh label, so the manifest differs from any before
 * it even over the same layers (default: one small layer of new bytes).
 */
export async function moveTag(baseUrl: string, repo: string, tag: string, options: Partial<PushImageOptions> = {}): Promise<PushedImage> {
  return pushImage(baseUrl, repo, tag, {
    ...options,
    layers: options.layers ?? [{ size: 1024 }],
    labels: { ...options.labels, 'org.ocireg.test.nonce': randomUUID() },
  });
}

/** GET (or HEAD) a manifest; returns status, headers and the body's bytes. */
export async function fetchManifest(
  baseUrl: string,
  repo: string,
  reference: string,
  options: { auth?: RegistryAuth; method?: 'GET' | 'HEAD'; accept?: string[]; timeoutMs?: number } = {},
): Promise<{ status: number; headers: Headers; body: Buffer }> {
  const headers: Record<string, string> = { accept: (options.accept ?? [OCI_MANIFEST, OCI_INDEX]).join(', ') };
  const authorization = authorizationOf(options.auth);
  if (authorization) headers.authorization = authorization;
  const res = await fetch(new URL(`/v2/${repo}/manifests/${reference}`, baseUrl), {
    method: options.method ?? 'GET',
    headers,
    signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
  });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** The requests of one push, to one repository of one registry. */
class RegistryClient {
  private readonly authorization: string | undefined;
  private readonly chunkSize: number;
  private readonly timeoutMs: number;

  constructor(
    private readonly baseUrl: string,
    private readonly repo: string,
    options: PushImageOptions,
  ) {
    this.authorization = authorizationOf(options.auth);
    this.chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** A blob held in memory: POST an upload, PUT its bytes with the digest. */
  async pushSmallBlob(bytes: Buffer, mediaType: string): Promise<PushedBlob> {
    const digest = digestOf(bytes);
    let location = await this.startUpload();
    location = withDigest(location, digest);
    await this.request('PUT', location, [201], bytes, { 'content-type': 'application/octet-stream' });
    return { digest, size: bytes.length, mediaType };
  }

  async pushLayerBytes(bytes: Buffer, mediaType: string): Promise<PushedLayer> {
    const gzipped = /gzip/.test(mediaType);
    const blob = await this.pushSmallBlob(bytes, mediaType);
    return { ...blob, diffId: gzipped ? digestOf(gunzipSync(bytes)) : blob.digest };
  }

  /** A tar of one pseudo-random file, made while it is uploaded in chunks and hashed in the same pass. */
  async pushGeneratedLayer(spec: { size: number; seed?: string; gzip?: boolean }, fileName: string): Promise<PushedLayer> {
    const seed = spec.seed ?? randomBytes(16).toString('hex');
    const mediaType = spec.gzip ? OCI_LAYER : OCI_LAYER_TAR;
    const diffHash = createHash('sha256');
    const blobHash = createHash('sha256');
    const tar = tarOfOneFile(fileName, spec.size, seed);
    let location = await this.startUpload();
    let size = 0;
    const uploader = async (source: AsyncIterable<Buffer>) => {
      for await (const chunk of chunked(source, this.chunkSize)) {
        blobHash.update(chunk);
        location = await this.request('PATCH', location, [202], chunk, {
          'content-type': 'application/octet-stream',
          'content-range': `${size}-${size + chunk.length - 1}`,
        });
        size += chunk.length;
      }
    };
    try {
      if (spec.gzip) await pipeline(tar.stream, hashing(diffHash), createGzip(), uploader);
      else await pipeline(tar.stream, hashing(diffHash), uploader);
      await tar.written;
    } catch (err) {
      tar.abort();
      throw err;
    }
    const digest = `sha256:${blobHash.digest('hex')}`;
    await this.request('PUT', withDigest(location, digest), [201]);
    return { digest, size, mediaType, diffId: `sha256:${diffHash.digest('hex')}` };
  }

  async putManifest(reference: string, body: Buffer, mediaType: string, digest: string): Promise<void> {
    const res = await this.send('PUT', this.url(`manifests/${reference}`), body, { 'content-type': mediaType });
    if (res.status !== 201) throw await failure('PUT', res);
    const returned = res.headers.get('docker-content-digest');
    if (returned && returned !== digest) throw new Error(`PUT manifest ${reference}: the registry says ${returned}, the bytes are ${digest}`);
  }

  private async startUpload(): Promise<URL> {
    return this.request('POST', this.url('blobs/uploads/'), [202]);
  }

  /** Sends, checks the status, and returns where the upload goes next (Location, else the same URL). */
  private async request(method: string, url: URL, expected: number[], body?: Buffer, headers: Record<string, string> = {}): Promise<URL> {
    const res = await this.send(method, url, body, headers);
    if (!expected.includes(res.status)) throw await failure(method, res);
    await res.arrayBuffer();
    const location = res.headers.get('location');
    return location ? new URL(location, url) : url;
  }

  private send(method: string, url: URL, body: Buffer | undefined, headers: Record<string, string>): Promise<Response> {
    const all: Record<string, string> = { ...headers };
    if (this.authorization) all.authorization = this.authorization;
    return fetch(url, { method, headers: all, ...(body ? { body } : {}), signal: AbortSignal.timeout(this.timeoutMs) });
  }

  private url(path: string): URL {
    return new URL(`/v2/${this.repo}/${path}`, this.baseUrl);
  }
}

async function failure(method: string, res: Response): Promise<Error> {
  const text = await res.text().catch(() => '');
  return new Error(`${method} ${res.url}: ${res.status} ${text.slice(0, 500)}`);
}

function withDigest(location: URL, digest: string): URL {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url;
}

/** Passes bytes through, hashing them. */
function hashing(hash: Hash): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
}

/** Regroups a byte stream into chunks of exactly `size` bytes (the last one shorter), one buffer at a time. */
async function* chunked(source: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  for await (const piece of source) {
    let rest = piece;
    while (pendingBytes + rest.length >= size) {
      const take = size - pendingBytes;
      pending.push(rest.subarray(0, take));
      yield Buffer.concat(pending, size);
      rest = rest.subarray(take);
      pending = [];
      pendingBytes = 0;
    }
    if (rest.length > 0) {
      pending.push(rest);
      pendingBytes += rest.length;
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
}

/**
 * A tar stream holding one file of `size` bytes of AES-CTR keystream from `seed` (fast, and the same
 * bytes for the same seed), written as the stream is read. `written` settles when the entry is done.
 */
function tarOfOneFile(name: string, size: number, seed: string): { stream: Readable; written: Promise<void>; abort: () => void } {
  const tar = tarPack();
  const aborted = new AbortController();
  const key = createHash('sha256').update(`key:${seed}`).digest();
  const iv = createHash('sha256').update(`iv:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-256-ctr', key, iv);
  const zeros = Buffer.alloc(FILL_BLOCK);
  const written = (async () => {
    let entryDone: (err?: Error | null) => void = () => undefined;
    const finished = new Promise<void>((resolve, reject) => {
      entryDone = (err) => (err ? reject(err) : resolve());
    });
    const entry = tar.entry({ name, size, mode: 0o644, mtime: new Date(0), type: 'file' }, (err) => entryDone(err));
    for (let left = size; left > 0; ) {
      const n = Math.min(left, FILL_BLOCK);
      if (!entry.write(cipher.update(n === FILL_BLOCK ? zeros : zeros.subarray(0, n)))) {
        await once(entry, 'drain', { signal: aborted.signal });
      }
      left -= n;
    }
    entry.end(null); // streamx's types want an argument; null writes nothing
    await finished;
    tar.finalize();
  })();
  written.catch(() => undefined); // awaited by the caller; aborted when the upload fails
  return {
    // Through Readable.from: tar-stream's packs are streamx streams, not Node's.
    stream: Readable.from(tar as AsyncIterable<Buffer>),
    written,
    abort: () => {
      aborted.abort();
      tar.destroy();
    },
  };
}
