// Black-box helpers for the conformance suite: plain HTTP against the registry under test.
// Nothing here imports from src/; every request has a timeout.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { expect, inject } from 'vitest';
import { authorizationAfter, authorizationFor } from './client-auth.js';

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

/**
 * fetch with the suite's credentials (see client-auth.ts): the Authorization header known up
 * front, and after a 401 whose challenge can be answered, one retry. Each attempt is bounded by
 * `timeoutMs`. A caller's own Authorization header is sent as it is, without retries.
 */
export async function fetchWithAuth(
  method: string,
  pathOrUrl: string,
  init: { headers?: Record<string, string>; body?: Buffer | string; redirect?: 'follow' | 'manual' | 'error'; timeoutMs?: number } = {},
): Promise<Response> {
  const url = resolveUrl(pathOrUrl);
  const own = Object.keys(init.headers ?? {}).some((k) => k.toLowerCase() === 'authorization');
  const send = (authorization: string | undefined) =>
    fetch(url, {
      method,
      headers: authorization === undefined ? init.headers : { ...init.headers, Authorization: authorization },
      body: init.body,
      redirect: init.redirect ?? 'follow',
      signal: AbortSignal.timeout(init.timeoutMs ?? REQUEST_MS),
    });
  const first = own ? undefined : authorizationFor(method, url);
  const res = await send(first);
  if (res.status !== 401 || own) return res;
  const retry = await authorizationAfter(method, url, res.headers.get('www-authenticate'), first);
  if (retry === undefined) return res;
  await res.arrayBuffer();
  return send(retry);
}

/** One HTTP request, bounded by REQUEST_MS; the whole body is read. Every 4xx JSON body is checked as an error envelope. */
export async function request(method: string, pathOrUrl: string, options: RequestOptions = {}): Promise<Reply> {
  const url = resolveUrl(pathOrUrl);
  const res = await fetchWithAuth(method, url, { headers: options.headers, body: options.body });
  const body = Buffer.from(await res.arrayBuffer());
  const reply = { status: res.status, headers: res.headers, body, url };
  checkEnvelopeIfJson(reply, method);
  return reply;
}

export interface RawHeadReply {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  /** Whatever the server sent after the blank line that ends the header block (must be empty for HEAD). */
  afterHeaders: Buffer;
}

/**
 * A HEAD request on a raw socket, so that bytes a server wrongly sends after a HEAD response's
 * header block can be seen (fetch never exposes a HEAD body). Sends `Connection: close` and reads
 * until the server closes, bounded by REQUEST_MS.
 */
export async function rawHead(pathOrUrl: string, headers: Record<string, string> = {}): Promise<RawHeadReply> {
  const url = resolveUrl(pathOrUrl);
  const first = authorizationFor('HEAD', url);
  const reply = await rawHeadOnce(url, first === undefined ? headers : { ...headers, Authorization: first });
  if (reply.status !== 401) return reply;
  const retry = await authorizationAfter('HEAD', url, reply.headers['www-authenticate'] ?? null, first);
  return retry === undefined ? reply : rawHeadOnce(url, { ...headers, Authorization: retry });
}

function rawHeadOnce(pathOrUrl: string, headers: Record<string, string>): Promise<RawHeadReply> {
  const url = new URL(resolveUrl(pathOrUrl));
  const tls = url.protocol === 'https:';
  const port = Number(url.port || (tls ? 443 : 80));
  const lines = [
    `HEAD ${url.pathname}${url.search} HTTP/1.1`,
    `Host: ${url.host}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    'Connection: close',
    '',
    '',
  ];
  return new Promise<RawHeadReply>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let settled = false;
    const socket: Socket = tls
      ? tlsConnect({ host: url.hostname, port, servername: url.hostname })
      : netConnect({ host: url.hostname, port });
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) return reject(err);
      const raw = Buffer.concat(chunks);
      const end = raw.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`no complete header block in ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`));
      const [statusLine, ...headerLines] = raw.subarray(0, end).toString('latin1').split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine ?? '');
      if (!m) return reject(new Error(`bad status line ${JSON.stringify(statusLine)}`));
      const parsed: Record<string, string> = {};
      for (const line of headerLines) {
        const i = line.indexOf(':');
        if (i > 0) parsed[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      resolve({ status: Number(m[1]), headers: parsed, afterHeaders: raw.subarray(end + 4) });
    };
    const timer = setTimeout(() => finish(new Error(`HEAD ${url.href}: no close within ${REQUEST_MS} ms`)), REQUEST_MS);
    socket.on(tls ? 'secureConnect' : 'connect', () => socket.write(lines.join('\r\n')));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    socket.on('error', (err) => finish(err));
  });
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

/**
 * The 1.1 error-code table (spec.md "Error Codes": "The `code` field MUST be one of the following"):
 * code-1 .. code-14.
 */
export const SPEC_ERROR_CODES: readonly string[] = [
  'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'UNAUTHORIZED',
  'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS',
];

function isClientError(status: number): boolean {
  return status >= 400 && status < 500;
}

/**
 * "A `4XX` response code from the registry MAY return a body in any format. If the response body
 * is in JSON format, it MUST have the following format: {"errors":[{code, message, detail}]}", and
 * "The `code` field MUST be one of the following" (the 14 codes above). Called on every reply:
 * a 4xx body that parses as JSON is held to that; any other body is left alone.
 */
function checkEnvelopeIfJson(reply: Reply, method: string): void {
  if (!isClientError(reply.status) || reply.body.length === 0) return;
  let parsed: unknown;
  try {
    parsed = JSON.parse(reply.body.toString('utf8'));
  } catch {
    return; // not JSON: the spec allows any format
  }
  checkEnvelope(parsed, reply, `${method} ${reply.url}`);
}

function checkEnvelope(parsed: unknown, reply: Reply, where: string): string[] {
  const text = reply.body.toString('utf8').slice(0, 300);
  const errors = (parsed as { errors?: unknown } | null)?.errors;
  expect(Array.isArray(errors), `${where}: ${reply.status} JSON body without an "errors" array: ${text}`).toBe(true);
  const list = errors as Array<Record<string, unknown>>;
  expect(list.length, `${where}: empty "errors" array`).toBeGreaterThan(0);
  for (const e of list) {
    expect(typeof e?.code, `${where}: error entry without a string code: ${text}`).toBe('string');
    const code = e.code as string;
    expect(code, `${where}: code must be upper-case letters and underscores`).toMatch(/^[A-Z_]+$/);
    expect(SPEC_ERROR_CODES, `${where}: code ${code} is not in the 1.1 error-code table`).toContain(code);
    if (e.message !== undefined) expect(typeof e.message, `${where}: message must be a string`).toBe('string');
    // Other keys in an entry are allowed: the spec does not forbid them.
  }
  return list.map((e) => e.code as string);
}

/** The error codes of an error body, asserting it is JSON in the spec's envelope with codes from the 1.1 table. */
export function errorCodes(reply: Reply): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(reply.body.toString('utf8'));
  } catch {
    throw new Error(`expected a JSON error body, got ${reply.status} ${JSON.stringify(reply.body.toString('utf8').slice(0, 200))}`);
  }
  return checkEnvelope(parsed, reply, reply.url);
}

/** Any status from 400 to 499. */
export const ANY_4XX = '4xx';

/** Asserts status (a list, one status, or ANY_4XX) and that the error envelope contains `code`. */
export function expectError(reply: Reply, status: number | number[] | typeof ANY_4XX, code: string | string[]): void {
  const detail = `status ${reply.status}, body ${reply.body.toString('utf8').slice(0, 300)}`;
  if (status === ANY_4XX) {
    expect(isClientError(reply.status), detail).toBe(true);
  } else {
    const statuses = Array.isArray(status) ? status : [status];
    expect(statuses, detail).toContain(reply.status);
  }
  const codes = errorCodes(reply);
  const wanted = Array.isArray(code) ? code : [code];
  expect(
    codes.some((c) => wanted.includes(c)),
    `one of ${wanted.join(', ')} in ${codes.join(', ')}`,
  ).toBe(true);
}

/** Asserts a 4xx answer (any body format: the spec lets a 4xx carry a body in any format). */
export function expectClientError(reply: Reply): void {
  expect(isClientError(reply.status), `status ${reply.status}, body ${reply.body.toString('utf8').slice(0, 300)}`).toBe(true);
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
