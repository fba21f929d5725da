/**
 * A registry over a temporary folder with ECR's repository settings installed, and operation
 * contexts for it whose caller's rights the test decides (every call to require, may and
 * requireRegistry is recorded).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Action, EcrConfig } from '../../src/config/config.js';
import { EcrError, ecrErrors } from '../../src/ecr/errors.js';
import type { OperationContext } from '../../src/ecr/operation.js';
import { repositoryOperations } from '../../src/ecr/operations/repositories.js';
import { EcrRepositories } from '../../src/ecr/repositories.js';
import type { EcrServices } from '../../src/ecr/services.js';
import type { Db } from '../../src/index/sqlite/database.js';
import { openSqliteIndex, type SqliteIndex } from '../../src/index/sqlite/index.js';
import { LifecycleService } from '../../src/maintenance/lifecycle/service.js';
import { Digest } from '../../src/oci/digest.js';
import { Registry } from '../../src/registry/registry.js';
import { FsBlobStore } from '../../src/storage/fs-blob-store.js';
import { OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, tempDir } from '../helpers.js';

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';
export const HOST = 'registry.example:5000';

export interface Rights {
  /** `repo:action` pairs the caller may not take (all others it may). */
  deny?: Iterable<string>;
  /** Whether the caller may change the registry's own settings (default true). */
  registry?: boolean;
}

export interface TestContext extends OperationContext {
  /** Every `repo:action` the operation required or asked about, in order. */
  readonly asked: string[];
}

export interface EcrFixture {
  root: string;
  index: SqliteIndex;
  /** The index's raw SQLite handle, for tests that look at rows. */
  db: Db;
  store: FsBlobStore;
  registry: Registry;
  repositories: EcrRepositories;
  ecr: EcrConfig;
  /** The clock of the settings (ms); tests move it. */
  clock: { now: number };
  ctx(rights?: Rights, operation?: string): TestContext;
  /** Runs an operation as a caller with these rights. */
  call(operation: string, input: Record<string, unknown>, rights?: Rights): Promise<Record<string, unknown>>;
  /** The EcrError an operation fails with (fails the test if it succeeds or throws something else). */
  fails(operation: string, input: Record<string, unknown>, rights?: Rights): Promise<EcrError>;
  /** Pushes a small image (config + layer + manifest) through the registry's own use cases. */
  pushImage(repo: string, tag: string | undefined, layer: string): Promise<string>;
  close(): Promise<void>;
}

export async function openFixture(options: { createOnPush?: boolean } = {}): Promise<EcrFixture> {
  const root = await tempDir('ocireg-ecr-');
  const store = new FsBlobStore(root);
  await store.init();
  const index = openSqliteIndex(join(root, 'index.db'));
  const registry = new Registry(store, index);
  const ecr: EcrConfig = {
    accountId: ACCOUNT,
    region: REGION,
    createOnPush: options.createOnPush ?? false,
    credentials: [],
    lifecycleIntervalMs: 86_400_000,
  };
  const clock = { now: Date.UTC(2025, 0, 2, 3, 4, 5, 678) };
  const repositories = new EcrRepositories(registry, index.ecr, ecr, () => clock.now);
  registry.rules = repositories.rules;
  const lifecycle = new LifecycleService(registry, {
    policyOf: async (repo) => (await repositories.lifecyclePolicy(repo))?.text,
    repositoriesWithPolicies: () => repositories.withLifecyclePolicies(),
    images: async () => [],
    referenced: async () => false,
    evaluated: (repo, at) => repositories.noteLifecycleEvaluated(repo, at),
  });
  const services = { repositories, lifecycle } as unknown as EcrServices;

  const ctx = (rights: Rights = {}, operation = 'Test'): TestContext => {
    const denied = new Set(rights.deny ?? []);
    const asked: string[] = [];
    const repositoryArn = (name: string) => `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${name}`;
    const may = (repo: string, action: Action) => {
      asked.push(`${repo}:${action}`);
      return !denied.has(`${repo}:${action}`);
    };
    return {
      registry,
      ecr,
      services,
      caller: { kind: 'user', name: 'alice', via: 'ecr', keyId: 'AKIAEXAMPLE0000001' },
      operation,
      registryHost: HOST,
      baseUrl: `http://${HOST}`,
      redirect: false,
      signal: new AbortController().signal,
      asked,
      may,
      require(repo, action) {
        if (!may(repo, action)) throw ecrErrors.accessDenied(`arn:aws:iam::${ACCOUNT}:user/alice`, operation, repositoryArn(repo));
      },
      requireRegistry() {
        asked.push('registry');
        if (rights.registry === false) throw ecrErrors.accessDenied(`arn:aws:iam::${ACCOUNT}:user/alice`, operation, `arn:aws:ecr:${REGION}:${ACCOUNT}:registry/${ACCOUNT}`);
      },
      repositoryArn,
    };
  };

  const call = async (operation: string, input: Record<string, unknown>, rights?: Rights) => {
    const op = repositoryOperations[operation];
    if (!op) throw new Error(`no operation ${operation}`);
    return (await op(input, ctx(rights, operation))) as Record<string, unknown>;
  };

  const fails = async (operation: string, input: Record<string, unknown>, rights?: Rights) => {
    let result: unknown;
    try {
      result = await call(operation, input, rights);
    } catch (err) {
      if (err instanceof EcrError) return err;
      throw err;
    }
    throw new Error(`${operation} succeeded: ${JSON.stringify(result)}`);
  };

  async function* bytes(data: Buffer): AsyncIterable<Uint8Array> {
    yield data;
  }
  async function pushBlob(repo: string, data: string) {
    const buf = Buffer.from(data);
    await registry.uploads.monolithic(repo, Digest.of(buf), bytes(buf), buf.length);
    return { digest: Digest.of(buf).toString(), size: buf.length };
  }
  const pushImage = async (repo: string, tag: string | undefined, layer: string) => {
    const config = await pushBlob(repo, JSON.stringify({ architecture: 'amd64', os: 'linux', layer }));
    const l = await pushBlob(repo, `layer:${layer}`);
    const body = Buffer.from(
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, ...config }, layers: [{ mediaType: OCI_LAYER, ...l }] }),
    );
    const ref = tag === undefined ? { digest: Digest.of(body) } : { tag };
    return (await registry.manifests.put(repo, ref, body, OCI_MANIFEST)).digest.toString();
  };

  return {
    root,
    index,
    db: index.db,
    store,
    registry,
    repositories,
    ecr,
    clock,
    ctx,
    call,
    fails,
    pushImage,
    close: async () => {
      await registry.pulls.close();
      await index.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}

/** A lifecycle policy ECR accepts (over 100 characters, as the model wants). */
export const LIFECYCLE_POLICY = JSON.stringify({
  rules: [
    {
      rulePriority: 1,
      description: 'expire untagged images after fourteen days',
      selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 14 },
      action: { type: 'expire' },
    },
  ],
});

/** A repository policy ECR accepts. */
export const REPOSITORY_POLICY = JSON.stringify({
  Version: '2012-10-17',
  Statement: [{ Sid: 'pull', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: ['ecr:BatchGetImage'] }],
});
