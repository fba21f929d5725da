// What EcrImages gives the lifecycle engine, and imageSizeInBytes as a pure function.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Digest } from '../../src/oci/digest.js';
import { imageSize, readManifest, type ManifestDoc } from '../../src/ecr/images.js';
import { OCI_INDEX, OCI_MANIFEST, openFixture, type Fixture } from './images-fixture.js';

const REPO = 'team/app';

describe('lifecycleImages', () => {
  let f: Fixture;
  beforeEach(async () => {
    f = await openFixture();
    f.repositories.add(REPO);
  });
  afterEach(async () => {
    await f.close();
  });

  it('gives every image with its tags and push time, pull time once pulled', async () => {
    const before = Date.now();
    const a = await f.pushImage(REPO, { tag: 'v1', layers: ['a'] });
    await f.registry.manifests.put(REPO, { tag: 'prod' }, a.body, a.mediaType);
    const b = await f.pushImage(REPO, { layers: ['b'] });
    f.registry.pulls.record(REPO, b.digest, 1_700_000_000_000);
    const images = await f.images.lifecycleImages(REPO);
    expect(images.map((i) => i.digest).sort()).toEqual([a.digest, b.digest].sort());
    const ia = images.find((i) => i.digest === a.digest)!;
    expect(ia.tags).toEqual(['prod', 'v1']);
    expect(ia.pushedAt).toBeGreaterThanOrEqual(before);
    expect(ia.pushedAt).toBeLessThanOrEqual(Date.now());
    expect(ia.lastPulledAt).toBeUndefined();
    expect(images.find((i) => i.digest === b.digest)).toMatchObject({ tags: [], lastPulledAt: 1_700_000_000_000 });
  });

  it('gives the latest pull time, whether or not it has been written to the index yet', async () => {
    const a = await f.pushImage(REPO, { tag: 'v1', layers: ['a'] });
    const pulledAt = async () => (await f.images.lifecycleImages(REPO)).find((i) => i.digest === a.digest)!.lastPulledAt;
    f.registry.pulls.record(REPO, a.digest, 1_700_000_000_000);
    expect(await pulledAt()).toBe(1_700_000_000_000); // not yet flushed
    await f.registry.pulls.flush();
    expect(await pulledAt()).toBe(1_700_000_000_000); // from the index
    f.registry.pulls.record(REPO, a.digest, 1_700_000_500_000);
    expect(await pulledAt()).toBe(1_700_000_500_000); // the later, unwritten pull wins over the index
    await f.registry.pulls.flush();
    expect(await pulledAt()).toBe(1_700_000_500_000);
  });

  it('leaves out the children of an index while it is there, and artifacts that follow their subject', async () => {
    const amd = await f.pushImage(REPO, { layers: ['amd'] });
    const arm = await f.pushImage(REPO, { layers: ['arm'] });
    const index = await f.pushIndex(REPO, [amd, arm], { tag: 'multi' });
    const plain = await f.pushImage(REPO, { tag: 'plain', layers: ['p'] });
    const sig = await f.pushImage(REPO, {
      layers: ['sig'],
      extra: { artifactType: 'application/vnd.example.sig', subject: { mediaType: OCI_MANIFEST, digest: plain.digest, size: plain.body.length } },
    });
    expect((await f.images.lifecycleImages(REPO)).map((i) => i.digest).sort()).toEqual([index.digest, plain.digest].sort());
    expect(await f.images.orphanedArtifacts(REPO)).toEqual([]);

    // The index gone, its children are ordinary untagged images; the subject gone, its artifact is an orphan.
    await f.registry.manifests.delete(REPO, { digest: Digest.parse(index.digest) });
    await f.registry.manifests.delete(REPO, { digest: Digest.parse(plain.digest) });
    const left = await f.images.lifecycleImages(REPO);
    expect(left.map((i) => i.digest).sort()).toEqual([amd.digest, arm.digest].sort());
    expect(left.every((i) => i.tags.length === 0)).toBe(true);
    expect(await f.images.orphanedArtifacts(REPO)).toEqual([sig.digest]);
  });

  it('is empty for a repository the index does not have', async () => {
    expect(await f.images.lifecycleImages('team/none')).toEqual([]);
    expect(await f.images.orphanedArtifacts('team/none')).toEqual([]);
  });
});

describe('imageSize', () => {
  const docs = new Map<string, ManifestDoc>([
    ['img-a', { isIndex: false, layerSizes: [10, 20], children: [] }],
    ['img-b', { isIndex: false, layerSizes: [100], children: [] }],
    ['empty', { isIndex: false, layerSizes: [], children: [] }],
    ['list', { isIndex: true, layerSizes: [], children: ['img-a', 'img-b', 'absent'] }],
    ['nested', { isIndex: true, layerSizes: [], children: ['list', 'img-a'] }],
    ['loop-1', { isIndex: true, layerSizes: [], children: ['loop-2'] }],
    ['loop-2', { isIndex: true, layerSizes: [], children: ['loop-1'] }],
  ]);
  const lookup = (d: string) => docs.get(d);

  it('sums the layers of an image and takes the largest child of an index', () => {
    expect(imageSize('img-a', lookup)).toBe(30);
    expect(imageSize('empty', lookup)).toBe(0);
    expect(imageSize('list', lookup)).toBe(100);
    expect(imageSize('nested', lookup)).toBe(100);
    expect(imageSize('absent', lookup)).toBe(0);
  });

  it('stops at a bounded depth', () => {
    expect(imageSize('loop-1', lookup)).toBe(0);
  });

  it('reads sizes from a stored manifest, not counting the config', () => {
    const content = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        config: { mediaType: 'x', digest: 'sha256:c', size: 1000 },
        layers: [{ size: 5 }, { size: 7 }, { size: -1 }, { size: 'x' }],
      }),
    );
    expect(readManifest({ mediaType: OCI_MANIFEST, content })).toEqual({ isIndex: false, layerSizes: [5, 7], children: [] });
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ digest: 'sha256:a' }, { size: 3 }] }));
    expect(readManifest({ mediaType: OCI_INDEX, content: index })).toEqual({ isIndex: true, layerSizes: [], children: ['sha256:a'] });
    expect(readManifest({ mediaType: OCI_MANIFEST, content: Buffer.from('{bad') })).toEqual({ isIndex: false, layerSizes: [], children: [] });
  });
});
