// Helpers shared by the sdk-*.test.ts suites: /v2/ pushes and pulls signed in as user AWS with
// the password GetAuthorizationToken gives (plain fetch against registry.url), images built from
// small blobs, and the lifecycle run of the registry's own database.
import { createHash } from 'node:crypto';
import { GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { expect } from 'vitest';
import { EcrCredentials } from '../../src/auth/ecr-credentials.js';
import { openEcr } from '../../src/ecr/setup.js';
import type { RunReport } from '../../src/maintenance/lifecycle/service.js';
import type { KeyName, EcrTestRegistry } from './sdk-support.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

/**
 * What an operation whose model does not list ValidationException (the older ones: CreateRepository,
 * ListImages, PutImage...) answers for a value that breaks one of the model's constraints, as ECR
 * words it: an InvalidParameterException naming the first problem. The newer operations answer a
 * ValidationException listing them all ("1 validation error detected: Value ... at '...' ...").
 */
export const invalidAt = (path: string, constraint: string): string => `Invalid parameter at '${path}' failed to satisfy constraint: '${constraint}'`;

export const sha256 = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** The `Authorization` header of a docker login as `AWS` with the key's login password. */
export async function awsLogin(registry: EcrTestRegistry, key: KeyName = 'admin'): Promise<string> {
  const out = await registry.client(key).send(new GetAuthorizationTokenCommand({}));
  return `Basic ${out.authorizationData![0]!.authorizationToken!}`;
}

export interface V2Response {
  status: number;
  headers: Headers;
  body: Buffer;
  /** The first error of an OCI error envelope. */
  error?: { code: string; message: string; detail?: unknown };
}

/** One /v2/ request (or any path of the registry), answered in full. */
export async function v2(
  registry: EcrTestRegistry,
  auth: string | undefined,
  method: string,
  path: string,
  options: { body?: Buffer; contentType?: string; headers?: Record<string, string> } = {},
): Promise<V2Response> {
  const headers: Record<string, string> = { ...options.headers };
  if (auth) headers.authorization = auth;
  if (options.contentType) headers['content-type'] = options.contentType;
  const res = await fetch(`${registry.url}${path}`, {
    method,
    headers,
    ...(options.body ? { body: options.body } : {}),
    signal: AbortSignal.timeout(30_000),
  });
  const body = Buffer.from(await res.arrayBuffer());
  let error: V2Response['error'];
  if (res.status >= 400 && body.length > 0) {
    try {
      error = (JSON.parse(body.toString('utf8')) as { errors?: Array<{ code: string; message: string; detail?: unknown }> }).errors?.[0];
    } catch {
      error = undefined;
    }
  }
  return { status: res.status, headers: res.headers, body, ...(error ? { error } : {}) };
}

/** Pushes a blob in one POST (monolithic upload) and returns its descriptor. */
export async function pushBlob(registry: EcrTestRegistry, auth: string, repo: string, data: Buffer | string): Promise<{ digest: string; size: number }> {
  const bytes = Buffer.from(data);
  const digest = sha256(bytes);
  const res = await v2(registry, auth, 'POST', `/v2/${repo}/blobs/uploads/?digest=${digest}`, { body: bytes, contentType: 'application/octet-stream' });
  if (res.status !== 201) throw new Error(`blob push to ${repo} answered ${res.status}: ${res.body.toString('utf8')}`);
  return { digest, size: bytes.length };
}

export interface Manifest {
  readonly digest: string;
  readonly body: Buffer;
  readonly text: string;
  readonly mediaType: string;
  /** The sum of the layers' sizes (ECR's imageSizeInBytes of an image manifest). */
  readonly layerSize: number;
  readonly layerDigests: readonly string[];
  readonly configDigest?: string;
}

export function manifestOf(doc: Record<string, unknown>, mediaType: string, layers: Array<{ digest: string; size: number }> = [], configDigest?: string): Manifest {
  const text = JSON.stringify(doc);
  const body = Buffer.from(text);
  return {
    digest: sha256(body),
    body,
    text,
    mediaType,
    layerSize: layers.reduce((n, l) => n + l.size, 0),
    layerDigests: layers.map((l) => l.digest),
    ...(configDigest ? { configDigest } : {}),
  };
}

export interface ImageOptions {
  /** Docker's v2 manifest instead of OCI's. */
  docker?: boolean;
  /** Members added to the manifest (annotations, subject, artifactType...). */
  extra?: Record<string, unknown>;
  /** The config's media type (ECR's artifactMediaType). */
  configMediaType?: string;
  architecture?: string;
}

/** Pushes a config and a layer made from `seed`, and returns an image manifest over them (not pushed). */
export async function makeImage(registry: EcrTestRegistry, auth: string, repo: string, seed: string, options: ImageOptions = {}): Promise<Manifest> {
  const config = await pushBlob(registry, auth, repo, JSON.stringify({ architecture: options.architecture ?? 'amd64', os: 'linux', seed }));
  const layer = await pushBlob(registry, auth, repo, `layer bytes of ${seed} `.repeat(8));
  const mediaType = options.docker ? DOCKER_MANIFEST : OCI_MANIFEST;
  const configMediaType = options.configMediaType ?? (options.docker ? DOCKER_CONFIG : OCI_CONFIG);
  return manifestOf(
    {
      schemaVersion: 2,
      mediaType,
      config: { mediaType: configMediaType, ...config },
      layers: [{ mediaType: options.docker ? DOCKER_LAYER : OCI_LAYER, ...layer }],
      ...options.extra,
    },
    mediaType,
    [layer],
    config.digest,
  );
}

/** An OCI index over manifests (not pushed); each child gets a platform of `architectures[i]`. */
export function indexOf(children: readonly Manifest[], architectures: readonly string[] = ['amd64', 'arm64'], extra: Record<string, unknown> = {}): Manifest {
  return manifestOf(
    {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: children.map((c, i) => ({
        mediaType: c.mediaType,
        digest: c.digest,
        size: c.body.length,
        platform: { architecture: architectures[i] ?? 'amd64', os: 'linux' },
      })),
      ...extra,
    },
    OCI_INDEX,
  );
}

/** PUT /v2/<repo>/manifests/<reference>. */
export function putManifest(registry: EcrTestRegistry, auth: string, repo: string, reference: string, manifest: Manifest): Promise<V2Response> {
  return v2(registry, auth, 'PUT', `/v2/${repo}/manifests/${reference}`, { body: manifest.body, contentType: manifest.mediaType });
}

/** Pushes an image made from `seed` under `reference` (a tag, or its digest when omitted); expects 201. */
export async function pushImage(
  registry: EcrTestRegistry,
  auth: string,
  repo: string,
  reference: string | undefined,
  seed: string,
  options: ImageOptions = {},
): Promise<Manifest> {
  const image = await makeImage(registry, auth, repo, seed, options);
  const res = await putManifest(registry, auth, repo, reference ?? image.digest, image);
  expect(res.status, res.body.toString('utf8')).toBe(201);
  return image;
}

/** Pushes a manifest already built (a tag, or its digest when omitted); expects 201. */
export async function pushManifest(registry: EcrTestRegistry, auth: string, repo: string, reference: string | undefined, manifest: Manifest): Promise<void> {
  const res = await putManifest(registry, auth, repo, reference ?? manifest.digest, manifest);
  expect(res.status, res.body.toString('utf8')).toBe(201);
}

/** Waits a few milliseconds, so that the next push has a later push time (lifecycle order). */
export function tick(ms = 5): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * A lifecycle run over the running registry's store and database, wired as `ocireg lifecycle run`
 * wires it (openEcr). The app's own Ecr is not reachable from outside buildApp, so this is the
 * same service over the same data; the registry's push rules are left as the app installed them.
 */
export async function runLifecycle(registry: EcrTestRegistry, options: { repository?: string; dryRun?: boolean } = {}): Promise<RunReport[]> {
  const reg = registry.app.registry;
  const ecr = registry.config.ecr!;
  const rules = reg.rules;
  const opened = openEcr(reg, ecr, new EcrCredentials(ecr.credentials));
  reg.rules = rules;
  const { reports, failed } = await opened.services.lifecycle.run(options);
  expect(failed).toEqual([]);
  return reports;
}
