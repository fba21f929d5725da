import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { buildApp } from '../src/app.js';
import { openPostgresIndex } from '../src/index/postgres/index.js';
import { createTestDatabase, postgresUrl, type TestDatabase } from './support/postgres.js';
import { loadConfig, type Config } from '../src/config/config.js';
import type { ConfigFile } from '../src/config/schema.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const OCI_CONFIG = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

export interface TestRegistry {
  app: FastifyInstance;
  config: Config;
  root: string;
  /** Closes the app; the data folder stays until `destroy`. */
  close(): Promise<void>;
  /** Closes the app and removes the data folder. */
  destroy(): Promise<void>;
}

export async function tempDir(prefix = 'ocireg-test-'): Promise<string> {
  return mkdtemp(join(tmpdir(), prefix));
}

/**
 * Which index `startRegistry` gives its apps: SQLite in the data folder (the default), or, with
 * OCIREG_TEST_INDEX=postgres (CI runs test/http once that way), a fresh PostgreSQL database per registry.
 */
const TEST_INDEX = process.env.OCIREG_TEST_INDEX ?? 'sqlite';

/** A registry on a fresh data folder (or `root`), with logging off. */
export async function startRegistry(overrides: ConfigFile = {}, root?: string): Promise<TestRegistry> {
  const dir = root ?? (await tempDir());
  const config = loadConfig({
    env: {},
    overrides: { ...overrides, storage: { ...overrides.storage, filesystem: { rootdirectory: dir } } },
  });
  let app: FastifyInstance;
  const database = TEST_INDEX === 'postgres' ? await postgresDatabaseFor(dir) : undefined;
  try {
    app = await buildApp(config, { logger: false, ...(database ? { index: await openPostgresIndex({ url: database.url, poolSize: 4 }) } : {}) });
    await app.ready();
  } catch (err) {
    if (database) {
      await database.drop();
      databases.delete(dir);
    }
    if (!root) await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let closed = false;
  const close = async () => {
    if (!closed) await app.close();
    closed = true;
  };
  return {
    app,
    config,
    root: dir,
    close,
    destroy: async () => {
      await close();
      await database?.drop();
      databases.delete(dir);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The PostgreSQL database of the registries on a data folder: made on the first start there, so
 * that a registry started again on the same folder (a restart) finds what it wrote.
 */
const databases = new Map<string, Promise<TestDatabase>>();
function postgresDatabaseFor(dir: string): Promise<TestDatabase> {
  let database = databases.get(dir);
  if (!database) {
    if (!postgresUrl()) throw new Error('OCIREG_TEST_INDEX=postgres needs a PostgreSQL server (OCIREG_TEST_POSTGRES_URL)');
    database = createTestDatabase();
    databases.set(dir, database);
  }
  return database;
}

export function digestOf(data: Buffer | string, algorithm: 'sha256' | 'sha512' = 'sha256'): string {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}`;
}

export function errorCode(res: LightMyRequestResponse): string | undefined {
  return (res.json() as { errors?: Array<{ code: string }> }).errors?.[0]?.code;
}

/** Pushes a blob in one POST and returns its digest. */
export async function pushBlob(app: FastifyInstance, repo: string, data: Buffer | string): Promise<string> {
  const digest = digestOf(data);
  const res = await app.inject({
    method: 'POST',
    url: `/v2/${repo}/blobs/uploads/?digest=${digest}`,
    headers: { 'content-type': 'application/octet-stream' },
    payload: Buffer.from(data),
  });
  if (res.statusCode !== 201) throw new Error(`blob push failed: ${res.statusCode} ${res.body}`);
  return digest;
}

export interface BuiltManifest {
  body: Buffer;
  digest: string;
  mediaType: string;
}

export function manifestOf(doc: unknown, mediaType: string): BuiltManifest {
  const body = Buffer.from(JSON.stringify(doc));
  return { body, digest: digestOf(body), mediaType };
}

/** Pushes a config and one layer, and returns an OCI image manifest over them (not pushed). */
export async function makeImage(
  app: FastifyInstance,
  repo: string,
  /** `layer` names the image (in its config) and makes its layer's bytes, unless `bytes` gives them. */
  options: { layer?: string; bytes?: Buffer; extra?: Record<string, unknown>; configMediaType?: string } = {},
): Promise<BuiltManifest> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', layer: options.layer ?? 'x' }));
  const layer = options.bytes ?? Buffer.from(`layer:${options.layer ?? 'x'}`);
  const configDigest = await pushBlob(app, repo, config);
  const layerDigest = await pushBlob(app, repo, layer);
  return manifestOf(
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: options.configMediaType ?? OCI_CONFIG, digest: configDigest, size: config.length },
      layers: [{ mediaType: OCI_LAYER, digest: layerDigest, size: layer.length }],
      ...options.extra,
    },
    OCI_MANIFEST,
  );
}

export async function putManifest(
  app: FastifyInstance,
  repo: string,
  reference: string,
  manifest: BuiltManifest,
): Promise<LightMyRequestResponse> {
  return app.inject({
    method: 'PUT',
    url: `/v2/${repo}/manifests/${reference}`,
    headers: { 'content-type': manifest.mediaType },
    payload: manifest.body,
  });
}
