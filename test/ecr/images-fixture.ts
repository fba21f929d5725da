// A real Registry (FsBlobStore in a temp folder, the SQLite index) with the image services, and
// OperationContexts built by hand, to drive ECR's image and layer operations without HTTP.
// EcrRepositories is faked: a set of names ECR knows, so that these tests do not depend on it.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Action, EcrConfig } from '../../src/config/config.js';
import { EcrCredentials } from '../../src/auth/ecr-credentials.js';
import { EcrError, ecrErrors } from '../../src/ecr/errors.js';
import { EcrImages } from '../../src/ecr/images.js';
import type { Operation, OperationContext, OperationTable } from '../../src/ecr/operation.js';
import type { EcrServices } from '../../src/ecr/services.js';
import type { Db } from '../../src/index/sqlite/database.js';
import { openSqliteIndex, type SqliteIndex } from '../../src/index/sqlite/index.js';
import { Digest } from '../../src/oci/digest.js';
import { Registry } from '../../src/registry/registry.js';
import { ImmutableTagError, RepositoryNotFoundError, type RepositoryRules } from '../../src/registry/repository-rules.js';
import { FsBlobStore } from '../../src/storage/fs-blob-store.js';
import { DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, digestOf, tempDir } from '../helpers.js';

export { DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_LAYER, OCI_MANIFEST, digestOf };

export const ACCOUNT = '123456789012';
export const KEY = { accessKeyId: 'AKIAOCIREGIMAGES0001', secretAccessKey: 'images-secret-0123456789abcdef', user: 'alice' };

export interface ContextOptions {
  /** Which rights the caller has (all by default). */
  may?: (repo: string, action: Action) => boolean;
  /** Whether the surface allows redirects to the store (storage.redirect). */
  redirect?: boolean;
  keyId?: string;
}

export interface PushedImage {
  digest: string;
  body: Buffer;
  mediaType: string;
  layerSizes: number[];
  configDigest: string;
  layerDigests: string[];
}

export interface Fixture {
  readonly root: string;
  readonly index: SqliteIndex;
  /** The index's raw SQLite handle, for tests that look at rows. */
  readonly db: Db;
  readonly registry: Registry;
  readonly images: EcrImages;
  readonly credentials: EcrCredentials;
  /** The repositories ECR knows (what the fake EcrRepositories.require accepts). */
  readonly repositories: Set<string>;
  /** Repositories whose tags may not move (the fake rules throw ImmutableTagError). */
  readonly immutable: Set<string>;
  ctx(options?: ContextOptions): OperationContext;
  /** Runs one operation of a table with a context (all rights unless told). */
  call(table: OperationTable, name: string, input: Record<string, unknown>, options?: ContextOptions): Promise<Record<string, any>>;
  pushBlob(repo: string, data: Buffer | string): Promise<string>;
  /** Pushes a config and layers of the given contents, then an image manifest over them. */
  pushImage(repo: string, options?: { tag?: string; layers?: string[]; mediaType?: string; extra?: Record<string, unknown>; configMediaType?: string }): Promise<PushedImage>;
  /** Pushes an index over manifests already in the repository. */
  pushIndex(repo: string, children: Array<{ digest: string; body: Buffer; mediaType: string; platform?: Record<string, string> }>, options?: { tag?: string; mediaType?: string; extra?: Record<string, unknown> }): Promise<PushedImage>;
  close(): Promise<void>;
}

export async function openFixture(): Promise<Fixture> {
  const root = await tempDir('ocireg-ecr-images-');
  const store = new FsBlobStore(join(root, 'store'));
  await store.init();
  const index = openSqliteIndex(join(root, 'index.db'));
  const repositories = new Set<string>();
  const immutable = new Set<string>();
  const rules: RepositoryRules = {
    async admitPush(repo) {
      if (!repositories.has(repo)) throw new RepositoryNotFoundError(repo, ACCOUNT);
    },
    async checkTagMoves(repo, moves) {
      const moved = moves.find((m) => m.from !== undefined);
      if (immutable.has(repo) && moved) throw new ImmutableTagError(repo, moved.tag);
    },
  };
  const registry = new Registry(store, index, { rules });
  const images = new EcrImages(registry, index.images);
  const credentials = new EcrCredentials([KEY]);
  const ecr: EcrConfig = { accountId: ACCOUNT, region: 'us-east-1', createOnPush: false, credentials: [KEY], lifecycleIntervalMs: 86_400_000 };
  const services = {
    credentials,
    images,
    repositories: {
      async require(name: string) {
        if (!repositories.has(name)) throw ecrErrors.repositoryNotFound(name, ACCOUNT);
        return { name };
      },
    },
    lifecycle: {},
  } as unknown as EcrServices;

  const ctx = (options: ContextOptions = {}): OperationContext => {
    const may = options.may ?? (() => true);
    const repositoryArn = (name: string) => `arn:aws:ecr:us-east-1:${ACCOUNT}:repository/${name}`;
    const context: OperationContext = {
      registry,
      ecr,
      services,
      caller: { kind: 'user', name: KEY.user, via: 'ecr', keyId: options.keyId ?? KEY.accessKeyId },
      operation: 'Test',
      registryHost: 'registry.test:5000',
      baseUrl: 'http://registry.test:5000',
      signal: new AbortController().signal,
      may,
      require(repo, action) {
        if (!may(repo, action)) throw ecrErrors.accessDenied(`arn:aws:iam::${ACCOUNT}:user/${KEY.user}`, 'Test', repositoryArn(repo));
      },
      requireRegistry() {},
      repositoryArn,
      redirect: options.redirect ?? false,
    };
    return context;
  };

  const pushBlob = async (repo: string, data: Buffer | string) => {
    const bytes = Buffer.from(data);
    const digest = Digest.of(bytes);
    await registry.uploads.monolithic(repo, digest, once(bytes), bytes.length);
    return digest.toString();
  };

  return {
    root,
    index,
    db: index.db,
    registry,
    images,
    credentials,
    repositories,
    immutable,
    ctx,
    async call(table, name, input, options) {
      const op: Operation | undefined = table[name];
      if (!op) throw new Error(`no operation ${name}`);
      return (await op(input, ctx(options))) as Record<string, any>;
    },
    pushBlob,
    async pushImage(repo, options = {}) {
      const contents = options.layers ?? ['x'];
      const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', layers: contents }));
      const configDigest = await pushBlob(repo, config);
      const layers = contents.map((c) => Buffer.from(`layer:${c}`));
      const layerDigests: string[] = [];
      for (const l of layers) layerDigests.push(await pushBlob(repo, l));
      const mediaType = options.mediaType ?? OCI_MANIFEST;
      const body = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType,
          config: { mediaType: options.configMediaType ?? OCI_CONFIG, digest: configDigest, size: config.length },
          layers: layers.map((l, i) => ({ mediaType: OCI_LAYER, digest: layerDigests[i], size: l.length })),
          ...options.extra,
        }),
      );
      const digest = Digest.of(body);
      await registry.manifests.put(repo, options.tag !== undefined ? { tag: options.tag } : { digest }, body, mediaType);
      return { digest: digest.toString(), body, mediaType, layerSizes: layers.map((l) => l.length), configDigest, layerDigests };
    },
    async pushIndex(repo, children, options = {}) {
      const mediaType = options.mediaType ?? OCI_INDEX;
      const body = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType,
          manifests: children.map((c) => ({
            mediaType: c.mediaType,
            digest: c.digest,
            size: c.body.length,
            ...(c.platform ? { platform: c.platform } : {}),
          })),
          ...options.extra,
        }),
      );
      const digest = Digest.of(body);
      await registry.manifests.put(repo, options.tag !== undefined ? { tag: options.tag } : { digest }, body, mediaType);
      return { digest: digest.toString(), body, mediaType, layerSizes: [], configDigest: '', layerDigests: [] };
    },
    async close() {
      await registry.pulls.close();
      await index.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

export async function* once(data: Buffer): AsyncIterable<Uint8Array> {
  yield data;
}

/** Asserts that a promise rejects with the ECR exception `type` (and a message matching `message`). */
export async function expectEcrError(promise: Promise<unknown>, type: string, message?: string | RegExp): Promise<EcrError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected ${type}`).toBeInstanceOf(EcrError);
  const ecrErr = err as EcrError;
  expect(ecrErr.type).toBe(type);
  if (message !== undefined) expect(ecrErr.message).toMatch(message);
  return ecrErr;
}
