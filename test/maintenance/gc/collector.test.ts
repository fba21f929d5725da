import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { GarbageCollector, STALE_DELETING_MS, type GcOptions } from '../../../src/maintenance/gc/collector.js';
import {
  OCI_INDEX,
  OCI_MANIFEST,
  digestOf,
  errorCode,
  makeImage,
  manifestOf,
  pushBlob,
  putManifest,
  startRegistry,
  type BuiltManifest,
  type TestRegistry,
} from '../../helpers.js';

const HOUR = 60 * 60 * 1000;

function blobPath(root: string, digest: string): string {
  const [algorithm, hex] = digest.split(':') as [string, string];
  return join(root, 'blobs', algorithm, hex.slice(0, 2), hex);
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

function layersOf(m: BuiltManifest): string[] {
  const doc = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> };
  return [doc.config.digest, ...doc.layers.map((l) => l.digest)];
}

describe('garbage collection', () => {
  let reg: TestRegistry;
  let collector: GarbageCollector;
  const run = (options: Partial<GcOptions> = {}) => collector.run({ delayMs: 0, ...options });
  const head = (repo: string, digest: string) => reg.app.inject({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}` });

  beforeEach(async () => {
    reg = await startRegistry({ storage: { maintenance: { gc: { enabled: false } } } });
    collector = new GarbageCollector(reg.app.registry);
  });
  afterEach(async () => {
    await reg.destroy();
  });

  it('removes what a deleted image held alone, keeps what another repository still uses, and says how much', async () => {
    const shared = Buffer.from('shared base layer');
    const a = await makeImage(reg.app, 'team/a', { layer: 'a-only' });
    const b = await makeImage(reg.app, 'team/b', { layer: 'b-only' });
    await pushBlob(reg.app, 'team/a', shared);
    await pushBlob(reg.app, 'team/b', shared);
    const withShared = (m: BuiltManifest) => {
      const doc = JSON.parse(m.body.toString());
      doc.layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(shared), size: shared.length });
      return manifestOf(doc, OCI_MANIFEST);
    };
    const imageA = withShared(a);
    const imageB = withShared(b);
    expect((await putManifest(reg.app, 'team/a', 'v1', imageA)).statusCode).toBe(201);
    expect((await putManifest(reg.app, 'team/b', 'v1', imageB)).statusCode).toBe(201);

    expect(await run()).toMatchObject({ manifests: 0, blobs: 0, bytes: 0 });

    expect((await reg.app.inject({ method: 'DELETE', url: `/v2/team/a/manifests/${imageA.digest}` })).statusCode).toBe(202);
    const [configA, layerA] = layersOf(a);
    const report = await run();
    // The deleted manifest's own bytes, its config and its own layer; not the shared layer.
    const expectedBytes = imageA.body.length + JSON.stringify({ architecture: 'amd64', os: 'linux', layer: 'a-only' }).length + 'layer:a-only'.length;
    expect(report).toMatchObject({ dryRun: false, manifests: 0, blobs: 3, bytes: expectedBytes, failed: 0 });
    for (const d of [imageA.digest, configA!, layerA!]) expect(await exists(blobPath(reg.root, d))).toBe(false);
    expect(await exists(blobPath(reg.root, digestOf(shared)))).toBe(true);
    expect(await exists(join(reg.root, 'repositories/team/a/_layers/sha256', layerA!.slice(7)))).toBe(false);
    expect((await head('team/a', layerA!)).statusCode).toBe(404);
    // team/b's image is whole.
    const pulled = await reg.app.inject({ method: 'GET', url: '/v2/team/b/manifests/v1', headers: { accept: OCI_MANIFEST } });
    expect(pulled.statusCode).toBe(200);
    for (const d of layersOf(imageB)) expect((await reg.app.inject({ method: 'GET', url: `/v2/team/b/blobs/${d}` })).statusCode).toBe(200);
    // A second run finds nothing more.
    expect(await run()).toMatchObject({ blobs: 0, bytes: 0 });
  });

  it('keeps everything within the grace window, and a dry run changes nothing', async () => {
    const image = await makeImage(reg.app, 'grace', { layer: 'g' });
    expect((await putManifest(reg.app, 'grace', 'v1', image)).statusCode).toBe(201);
    expect((await reg.app.inject({ method: 'DELETE', url: `/v2/grace/manifests/${image.digest}` })).statusCode).toBe(202);
    expect(await run({ delayMs: HOUR })).toMatchObject({ blobs: 0 });
    const dry = await run({ dryRun: true });
    expect(dry).toMatchObject({ dryRun: true, blobs: 3 });
    for (const d of [image.digest, ...layersOf(image)]) expect(await exists(blobPath(reg.root, d))).toBe(true);
    expect(await run()).toMatchObject({ blobs: 3, bytes: dry.bytes });
  });

  it('with deleteUntagged removes what no tag reaches, and keeps indexes\' children and referrers of kept images', async () => {
    const amd = await makeImage(reg.app, 'multi', { layer: 'amd' });
    const arm = await makeImage(reg.app, 'multi', { layer: 'arm' });
    for (const m of [amd, arm]) expect((await putManifest(reg.app, 'multi', m.digest, m)).statusCode).toBe(201);
    const index = manifestOf(
      {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.body.length, platform: { os: 'linux', architecture: 'amd64' } },
          { mediaType: OCI_MANIFEST, digest: arm.digest, size: arm.body.length, platform: { os: 'linux', architecture: 'arm64' } },
        ],
      },
      OCI_INDEX,
    );
    expect((await putManifest(reg.app, 'multi', 'latest', index)).statusCode).toBe(201);
    const signature = await signatureOf(index);
    expect((await putManifest(reg.app, 'multi', signature.digest, signature)).statusCode).toBe(201);
    const loose = await makeImage(reg.app, 'multi', { layer: 'loose' });
    expect((await putManifest(reg.app, 'multi', loose.digest, loose)).statusCode).toBe(201);

    // Without deleteUntagged, untagged manifests stay.
    expect(await run()).toMatchObject({ manifests: 0, blobs: 0 });
    const report = await run({ deleteUntagged: true });
    expect(report).toMatchObject({ manifests: 1, blobs: 3 });
    expect((await reg.app.inject({ method: 'HEAD', url: `/v2/multi/manifests/${loose.digest}` })).statusCode).toBe(404);
    for (const m of [index, amd, arm, signature]) {
      expect((await reg.app.inject({ method: 'HEAD', url: `/v2/multi/manifests/${m.digest}`, headers: { accept: `${OCI_MANIFEST}, ${OCI_INDEX}` } })).statusCode).toBe(200);
    }

    // Untag the index: the index, its children and its signature all go (the signature with its subject).
    expect((await reg.app.inject({ method: 'DELETE', url: '/v2/multi/manifests/latest' })).statusCode).toBe(202);
    const after = await run({ deleteUntagged: true });
    expect(after.manifests).toBe(4);
    expect(((await reg.app.inject({ method: 'GET', url: '/v2/multi/tags/list' })).json() as { tags: string[] | null }).tags ?? []).toEqual([]);
    for (const m of [index, amd, arm, signature]) expect(await exists(blobPath(reg.root, m.digest))).toBe(false);
  });

  it('a referrer whose subject is deleted goes only with deleteUntagged', async () => {
    const image = await makeImage(reg.app, 'signed', { layer: 's' });
    expect((await putManifest(reg.app, 'signed', 'v1', image)).statusCode).toBe(201);
    const signature = await signatureOf(image);
    expect((await putManifest(reg.app, 'signed', signature.digest, signature)).statusCode).toBe(201);
    expect((await reg.app.inject({ method: 'DELETE', url: `/v2/signed/manifests/${image.digest}` })).statusCode).toBe(202);
    expect(await run()).toMatchObject({ manifests: 0 });
    expect((await reg.app.inject({ method: 'HEAD', url: `/v2/signed/manifests/${signature.digest}` })).statusCode).toBe(200);
    expect(await run({ deleteUntagged: true })).toMatchObject({ manifests: 1 });
    expect((await reg.app.inject({ method: 'HEAD', url: `/v2/signed/manifests/${signature.digest}` })).statusCode).toBe(404);
  });

  it('a HEAD takes a candidate back before the sweep', async () => {
    const digest = await pushBlob(reg.app, 'loose', 'a blob no manifest uses');
    const gc = reg.app.registry.database.gc;
    expect(await gc.markCandidates(Date.now() + 1, Date.now() + 1)).toMatchObject({ count: 1 });
    expect((await head('loose', digest)).statusCode).toBe(200);
    expect((await gc.blobState(digest))?.state).toBe('live');
    expect(await run({ delayMs: HOUR })).toMatchObject({ blobs: 0 });
    expect((await reg.app.inject({ method: 'GET', url: `/v2/loose/blobs/${digest}` })).body).toBe('a blob no manifest uses');
  });

  it('a blob being deleted answers 404, refuses manifests and mounts, and an upload of it waits for the deletion and then stores it anew', async () => {
    const data = 'about to be deleted';
    const digest = await pushBlob(reg.app, 'gone', data);
    const gc = reg.app.registry.database.gc;
    const later = Date.now() + 1;
    await gc.markCandidates(later, later);
    const deleting = await gc.beginDeleting([digest], later);
    expect(deleting.map((d) => d.digest)).toEqual([digest]);

    expect((await head('gone', digest)).statusCode).toBe(404);
    const config = await pushBlob(reg.app, 'gone', '{}');
    const refusing = manifestOf(
      { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size: data.length }] },
      OCI_MANIFEST,
    );
    const put = await putManifest(reg.app, 'gone', 'v1', refusing);
    expect(put.statusCode).toBe(400);
    expect(errorCode(put)).toBe('MANIFEST_BLOB_UNKNOWN');
    const mount = await reg.app.inject({ method: 'POST', url: `/v2/other/blobs/uploads/?mount=${digest}&from=gone` });
    expect(mount.statusCode).toBe(202);

    // The sweep finishes a moment later; the upload that waited for it then writes the bytes again.
    const finishing = (async () => {
      await new Promise((r) => setTimeout(r, 300));
      await reg.app.registry.store.delete(`blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`);
      await gc.finishDeleting([digest]);
    })();
    const again = await reg.app.inject({
      method: 'POST',
      url: `/v2/gone/blobs/uploads/?digest=${digest}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: Buffer.from(data),
    });
    await finishing;
    expect(again.statusCode).toBe(201);
    expect((await reg.app.inject({ method: 'GET', url: `/v2/gone/blobs/${digest}` })).body).toBe(data);
    expect((await putManifest(reg.app, 'gone', 'v1', refusing)).statusCode).toBe(201);
  });

  it('keeps a blob the store will not delete, and a later run finishes a deletion that was cut short', async () => {
    const digest = await pushBlob(reg.app, 'stubborn', 'cannot delete me');
    const store = reg.app.registry.store;
    const original = store.deleteMany?.bind(store);
    store.deleteMany = async (keys) => keys.map((key) => ({ key, error: new Error('refused') }));
    try {
      // A little later than the push: a blob touched in the very millisecond of the cutoff is not yet a candidate.
      const report = await run({ now: () => Date.now() + 1000 });
      expect(report).toMatchObject({ blobs: 0, failed: 1 });
      expect((await reg.app.registry.database.gc.blobState(digest))?.state).toBe('live');
      expect((await head('stubborn', digest)).statusCode).toBe(200);
    } finally {
      if (original) store.deleteMany = original;
      else delete store.deleteMany;
    }

    // A run that stopped after its compare-and-set: the blob is 'deleting', its bytes still there.
    const gc = reg.app.registry.database.gc;
    const later = Date.now() + 1;
    await gc.markCandidates(later, later);
    expect(await gc.beginDeleting([digest], later)).toHaveLength(1);
    // Too recent to be abandoned: a run now leaves it to its own run.
    expect(await run({ delayMs: HOUR })).toMatchObject({ blobs: 0 });
    const report = await run({ delayMs: HOUR, now: () => Date.now() + STALE_DELETING_MS + 1000 });
    expect(report).toMatchObject({ blobs: 1 });
    expect(await gc.blobState(digest)).toBeUndefined();
    expect(await exists(blobPath(reg.root, digest))).toBe(false);
  });

  async function signatureOf(subject: BuiltManifest): Promise<BuiltManifest> {
    const config = await pushBlob(reg.app, 'signed', '{}');
    await pushBlob(reg.app, 'multi', '{}');
    const payload = await pushBlob(reg.app, 'signed', `signature of ${subject.digest}`);
    await pushBlob(reg.app, 'multi', `signature of ${subject.digest}`);
    return manifestOf(
      {
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
        config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: config, size: 2 },
        layers: [{ mediaType: 'application/vnd.dev.cosign.simplesigning.v1+json', digest: payload, size: `signature of ${subject.digest}`.length }],
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.body.length },
      },
      OCI_MANIFEST,
    );
  }
});
