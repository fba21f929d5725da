import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openSqliteIndex } from '../../src/index/sqlite/index.js';
import { reindex, type ReindexReport } from '../../src/registry/reindex.js';
import { FsBlobStore } from '../../src/storage/fs-blob-store.js';
import {
  DOCKER_MANIFEST,
  OCI_INDEX,
  OCI_MANIFEST,
  digestOf,
  errorCode,
  makeImage,
  manifestOf,
  pushBlob,
  putManifest,
  startRegistry,
  tempDir,
  type BuiltManifest,
} from '../helpers.js';
import { buildCli, runCli, type BuiltCli } from '../support/built-server.js';
import { filesUnder } from '../support/socket.js';

const ALPINE = 'library/alpine';
const TEAM = 'team/app';
const SBOM = 'application/vnd.example.sbom.v1';

/** Removes the SQLite index (and its WAL and shared-memory files) of a storage root. */
async function deleteIndex(root: string): Promise<void> {
  for (const suffix of ['', '-wal', '-shm']) await rm(join(root, `index.db${suffix}`), { force: true });
}

/** Rebuilds the index of `root` into a fresh database, as `ocireg reindex` does. */
async function reindexRoot(root: string): Promise<ReindexReport> {
  const store = new FsBlobStore(root);
  await store.init();
  const index = openSqliteIndex(join(root, 'index.db'));
  try {
    return await reindex(store, index.registry);
  } finally {
    await index.close();
  }
}

function blobPath(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(root, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

interface Fixture {
  a: BuiltManifest;
  b: BuiltManifest;
  c: BuiltManifest;
  index: BuiltManifest;
  referrer: BuiltManifest;
  docker: BuiltManifest;
  /** Blobs readable per repository, with their sizes. */
  linked: Record<string, Map<string, number>>;
  /** Blobs that must not be readable in a repository. */
  unlinked: Record<string, string[]>;
  uploadPath: string;
}

function layersOf(m: BuiltManifest): Array<{ digest: string; size: number }> {
  const doc = JSON.parse(m.body.toString()) as { config: { digest: string; size: number }; layers: Array<{ digest: string; size: number }> };
  return [doc.config, ...doc.layers];
}

function expectCreated(res: Awaited<ReturnType<typeof putManifest>>): void {
  expect(res.statusCode, res.body).toBe(201);
}

/** Two repositories with manifests, an index, a referrer, moved and deleted tags, a deleted manifest, an unlinked blob, a mount and an upload in progress. */
async function populate(app: FastifyInstance): Promise<Fixture> {
  const a = await makeImage(app, ALPINE, { layer: 'a' });
  const b = await makeImage(app, ALPINE, { layer: 'b' });
  const c = await makeImage(app, ALPINE, { layer: 'c' });
  expectCreated(await putManifest(app, ALPINE, 'latest', a));
  expectCreated(await putManifest(app, ALPINE, 'v1', a));
  expectCreated(await putManifest(app, ALPINE, 'old', a));
  expectCreated(await putManifest(app, ALPINE, 'latest', b)); // moves latest from a to b
  expectCreated(await putManifest(app, ALPINE, 'gone', c));
  expect((await app.inject({ method: 'DELETE', url: `/v2/${ALPINE}/manifests/old` })).statusCode).toBe(202);
  expect((await app.inject({ method: 'DELETE', url: `/v2/${ALPINE}/manifests/${c.digest}` })).statusCode).toBe(202);
  const [cConfig, cLayer] = layersOf(c);
  expect((await app.inject({ method: 'DELETE', url: `/v2/${ALPINE}/blobs/${cConfig!.digest}` })).statusCode).toBe(202);

  const index = manifestOf(
    {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: a.digest, size: a.body.length, platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: OCI_MANIFEST, digest: b.digest, size: b.body.length, platform: { os: 'linux', architecture: 'arm64' } },
      ],
    },
    OCI_INDEX,
  );
  expectCreated(await putManifest(app, ALPINE, 'multi', index));

  const emptyConfig = Buffer.from('{}');
  const sbom = Buffer.from('{"sbom":true}');
  const emptyDigest = await pushBlob(app, ALPINE, emptyConfig);
  const sbomDigest = await pushBlob(app, ALPINE, sbom);
  const referrer = manifestOf(
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType: SBOM,
      config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: emptyConfig.length },
      layers: [{ mediaType: 'application/json', digest: sbomDigest, size: sbom.length }],
      subject: { mediaType: OCI_MANIFEST, digest: a.digest, size: a.body.length },
      annotations: { 'org.example.kind': 'sbom' },
    },
    OCI_MANIFEST,
  );
  const put = await putManifest(app, ALPINE, referrer.digest, referrer);
  expectCreated(put);
  expect(put.headers['oci-subject']).toBe(a.digest);

  // team/app: a Docker schema 2 image, and a layer mounted from library/alpine.
  const dConfig = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', d: true }));
  const dLayer = Buffer.from('layer:d');
  const dConfigDigest = await pushBlob(app, TEAM, dConfig);
  const dLayerDigest = await pushBlob(app, TEAM, dLayer);
  const docker = manifestOf(
    {
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: dConfigDigest, size: dConfig.length },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: dLayerDigest, size: dLayer.length }],
    },
    DOCKER_MANIFEST,
  );
  expectCreated(await putManifest(app, TEAM, '1.0', docker));
  const [aConfig, aLayer] = layersOf(a);
  const mount = await app.inject({ method: 'POST', url: `/v2/${TEAM}/blobs/uploads/?mount=${aLayer!.digest}&from=${ALPINE}` });
  expect(mount.statusCode).toBe(201);

  const post = await app.inject({ method: 'POST', url: `/v2/${TEAM}/blobs/uploads/` });
  expect(post.statusCode).toBe(202);
  const uploadPath = post.headers.location as string;
  const patch = await app.inject({
    method: 'PATCH',
    url: uploadPath,
    headers: { 'content-type': 'application/octet-stream' },
    payload: Buffer.alloc(1000, 3),
  });
  expect(patch.statusCode).toBe(202);

  const sized = (list: Array<{ digest: string; size: number }>) => new Map(list.map((d) => [d.digest, d.size]));
  const [bConfig, bLayer] = layersOf(b);
  return {
    a,
    b,
    c,
    index,
    referrer,
    docker,
    linked: {
      [ALPINE]: sized([aConfig!, aLayer!, bConfig!, bLayer!, cLayer!, { digest: emptyDigest, size: 2 }, { digest: sbomDigest, size: sbom.length }]),
      [TEAM]: sized([{ digest: dConfigDigest, size: dConfig.length }, { digest: dLayerDigest, size: dLayer.length }, aLayer!]),
    },
    unlinked: { [ALPINE]: [cConfig!.digest, dLayerDigest], [TEAM]: [bLayer!.digest, aConfig!.digest] },
    uploadPath,
  };
}

/** What a client sees of the fixture; asserted before the index is dropped and after it is rebuilt. */
async function expectState(app: FastifyInstance, f: Fixture): Promise<void> {
  const catalog = await app.inject({ method: 'GET', url: '/v2/_catalog' });
  expect(catalog.statusCode).toBe(200);
  expect(catalog.json()).toEqual({ repositories: [ALPINE, TEAM] });

  const alpineTags = await app.inject({ method: 'GET', url: `/v2/${ALPINE}/tags/list` });
  expect(alpineTags.json()).toEqual({ name: ALPINE, tags: ['latest', 'multi', 'v1'] });
  const teamTags = await app.inject({ method: 'GET', url: `/v2/${TEAM}/tags/list` });
  expect(teamTags.json()).toEqual({ name: TEAM, tags: ['1.0'] });

  const manifests: Array<[string, string, BuiltManifest]> = [
    [ALPINE, 'latest', f.b],
    [ALPINE, 'v1', f.a],
    [ALPINE, 'multi', f.index],
    [ALPINE, f.a.digest, f.a],
    [ALPINE, f.b.digest, f.b],
    [ALPINE, f.index.digest, f.index],
    [ALPINE, f.referrer.digest, f.referrer],
    [TEAM, '1.0', f.docker],
    [TEAM, f.docker.digest, f.docker],
  ];
  for (const [repo, ref, m] of manifests) {
    const res = await app.inject({ method: 'GET', url: `/v2/${repo}/manifests/${ref}` });
    expect(res.statusCode, `${repo}:${ref}`).toBe(200);
    expect(res.headers['content-type']).toBe(m.mediaType);
    expect(res.headers['docker-content-digest']).toBe(m.digest);
    expect(res.rawPayload.equals(m.body), `${repo}:${ref} bytes`).toBe(true);
  }

  for (const [repo, ref] of [
    [ALPINE, 'old'],
    [ALPINE, 'gone'],
    [ALPINE, f.c.digest],
    [TEAM, f.a.digest],
  ] as const) {
    const res = await app.inject({ method: 'GET', url: `/v2/${repo}/manifests/${ref}` });
    expect(res.statusCode, `${repo}:${ref}`).toBe(404);
    expect(errorCode(res)).toBe('MANIFEST_UNKNOWN');
  }

  for (const [repo, blobs] of Object.entries(f.linked)) {
    for (const [digest, size] of blobs) {
      const res = await app.inject({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}` });
      expect(res.statusCode, `${repo}@${digest}`).toBe(200);
      expect(res.headers['content-length']).toBe(String(size));
    }
  }
  for (const [repo, blobs] of Object.entries(f.unlinked)) {
    for (const digest of blobs) {
      const res = await app.inject({ method: 'GET', url: `/v2/${repo}/blobs/${digest}` });
      expect(res.statusCode, `${repo}@${digest} must not be readable`).toBe(404);
      expect(errorCode(res)).toBe('BLOB_UNKNOWN');
    }
  }

  const referrers = await app.inject({ method: 'GET', url: `/v2/${ALPINE}/referrers/${f.a.digest}` });
  expect(referrers.statusCode).toBe(200);
  expect(referrers.headers['content-type']).toMatch(/^application\/vnd\.oci\.image\.index\.v1\+json/);
  expect(referrers.json()).toEqual({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [
      {
        mediaType: OCI_MANIFEST,
        digest: f.referrer.digest,
        size: f.referrer.body.length,
        artifactType: SBOM,
        annotations: { 'org.example.kind': 'sbom' },
      },
    ],
  });
  const none = await app.inject({ method: 'GET', url: `/v2/${ALPINE}/referrers/${f.b.digest}` });
  expect(none.json()).toMatchObject({ manifests: [] });

  const upload = await app.inject({ method: 'GET', url: f.uploadPath });
  expect(upload.statusCode).toBe(204);
  expect(upload.headers.range).toBe('0-999');
  expect(upload.headers.location).toBe(f.uploadPath);
}

describe('reindex', () => {
  let root: string | undefined;
  afterEach(async () => {
    if (root) await rm(root, { recursive: true, force: true });
    root = undefined;
  });

  it('rebuilds repositories, manifests, tags, blob links, referrers and uploads from the storage root', async () => {
    const before = await startRegistry();
    root = before.root;
    let fixture: Fixture;
    try {
      fixture = await populate(before.app);
      await expectState(before.app, fixture);
    } finally {
      await before.close();
    }

    await deleteIndex(root);
    const report = await reindexRoot(root);
    expect(report.skipped).toEqual([]);
    expect(report).toMatchObject({ repositories: 2, manifests: 5, tags: 4, uploads: 1 });
    expect(report.blobs).toBe((await filesUnder(join(root, 'blobs'))).length);

    const after = await startRegistry({}, root);
    try {
      await expectState(after.app, fixture);

      // The rebuilt index is usable: links let a new manifest through, and the upload completes.
      const again = manifestOf(JSON.parse(fixture.b.body.toString()) as unknown, OCI_MANIFEST);
      expectCreated(await putManifest(after.app, ALPINE, 'again', again));
      const rest = Buffer.alloc(24, 3);
      const whole = Buffer.concat([Buffer.alloc(1000, 3), rest]);
      const put = await after.app.inject({
        method: 'PUT',
        url: `${fixture.uploadPath}?digest=${digestOf(whole)}`,
        headers: { 'content-type': 'application/octet-stream', 'content-range': '1000-1023' },
        payload: rest,
      });
      expect(put.statusCode, put.body).toBe(201);
      const blob = await after.app.inject({ method: 'GET', url: `/v2/${TEAM}/blobs/${digestOf(whole)}` });
      expect(blob.statusCode).toBe(200);
      expect(blob.rawPayload.equals(whole)).toBe(true);
    } finally {
      await after.close();
    }
  });

  it('reports, and leaves out, a manifest whose content is missing and the tag pointing at it', async () => {
    const reg = await startRegistry();
    root = reg.root;
    const repo = 'broken/repo';
    let lost: BuiltManifest;
    try {
      const ok = await makeImage(reg.app, repo, { layer: 'ok' });
      lost = await makeImage(reg.app, repo, { layer: 'lost' });
      expectCreated(await putManifest(reg.app, repo, 'ok', ok));
      expectCreated(await putManifest(reg.app, repo, 'lost', lost));
    } finally {
      await reg.close();
    }
    await rm(blobPath(root, lost.digest));
    await deleteIndex(root);

    const report = await reindexRoot(root);
    const hex = lost.digest.slice('sha256:'.length);
    expect(report.skipped).toEqual(
      expect.arrayContaining([
        { key: `repositories/${repo}/_manifests/sha256/${hex}`, reason: 'manifest content is missing' },
        { key: `repositories/${repo}/_tags/lost`, reason: expect.stringContaining(lost.digest) },
      ]),
    );
    expect(report.skipped).toHaveLength(2);
    expect(report).toMatchObject({ repositories: 1, manifests: 1, tags: 1 });

    const after = await startRegistry({}, root);
    try {
      expect((await after.app.inject({ method: 'GET', url: `/v2/${repo}/tags/list` })).json()).toEqual({ name: repo, tags: ['ok'] });
      const missing = await after.app.inject({ method: 'GET', url: `/v2/${repo}/manifests/lost` });
      expect(missing.statusCode).toBe(404);
      expect(errorCode(missing)).toBe('MANIFEST_UNKNOWN');
      expect((await after.app.inject({ method: 'GET', url: `/v2/${repo}/manifests/ok` })).statusCode).toBe(200);
    } finally {
      await after.close();
    }
  });
});

describe('ocireg reindex (the built CLI)', () => {
  let built: BuiltCli | undefined;
  let root: string | undefined;
  let configDir: string | undefined;

  beforeAll(async () => {
    built = await buildCli();
  }, 180_000);
  afterAll(async () => {
    await built?.remove();
  });
  afterEach(async () => {
    for (const dir of [root, configDir]) if (dir) await rm(dir, { recursive: true, force: true });
    root = configDir = undefined;
  });

  it('prints a summary line and the skipped entries', { timeout: 60_000 }, async () => {
    const reg = await startRegistry();
    root = reg.root;
    const repo = 'cli/repo';
    let lost: BuiltManifest;
    try {
      const image = await makeImage(reg.app, repo, { layer: 'cli' });
      lost = manifestOf({ ...JSON.parse(image.body.toString()), annotations: { lost: 'yes' } }, OCI_MANIFEST);
      expectCreated(await putManifest(reg.app, repo, 'v1', image));
      expectCreated(await putManifest(reg.app, repo, 'lost', lost));
    } finally {
      await reg.close();
    }
    await rm(blobPath(root, lost.digest));
    await deleteIndex(root);

    configDir = await tempDir('ocireg-config-');
    const configPath = join(configDir, 'config.yml');
    await writeFile(configPath, `version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: ${root}\n`);

    const result = await runCli(built!.cli, ['reindex', configPath]);
    expect(result.code, result.stderr).toBe(0);
    const lines = result.stdout.trimEnd().split('\n');
    // blobs: the image's config, layer and manifest (the lost manifest's content was removed)
    expect(lines[0]).toBe(`reindexed ${root}: 1 repositories, 1 manifests, 1 tags, 3 blobs, 0 uploads in progress`);
    expect(lines.slice(1).sort()).toEqual(
      [
        `skipped repositories/${repo}/_manifests/sha256/${lost.digest.slice(7)}: manifest content is missing`,
        `skipped repositories/${repo}/_tags/lost: tagged manifest ${lost.digest} is missing`,
      ].sort(),
    );

    const after = await startRegistry({}, root);
    try {
      expect((await after.app.inject({ method: 'GET', url: `/v2/${repo}/tags/list` })).json()).toEqual({ name: repo, tags: ['v1'] });
    } finally {
      await after.close();
    }
  });
});
