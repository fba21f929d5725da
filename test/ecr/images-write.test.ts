// PutImage and BatchDeleteImage over a real registry, with the push rules of an ECR registry
// (repositories must exist, immutable tags) faked in the fixture.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { imageOperations as ops } from '../../src/ecr/operations/images.js';
import { Digest } from '../../src/oci/digest.js';
import { ACCOUNT, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, expectEcrError, openFixture, type Fixture } from './images-fixture.js';

const REPO = 'team/app';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
  f.repositories.add(REPO);
});
afterEach(async () => {
  await f.close();
});

/** An image manifest over a config and a layer pushed now (the manifest itself is not pushed). */
async function manifestText(layer = 'x', mediaType = OCI_MANIFEST, withMediaType = true): Promise<{ text: string; digest: string; layerDigest: string }> {
  const config = Buffer.from(`{"layer":"${layer}"}`);
  const content = Buffer.from(`layer:${layer}`);
  const configDigest = await f.pushBlob(REPO, config);
  const layerDigest = await f.pushBlob(REPO, content);
  const text = JSON.stringify({
    schemaVersion: 2,
    ...(withMediaType ? { mediaType } : {}),
    config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
    layers: [{ mediaType: OCI_LAYER, digest: layerDigest, size: content.length }],
  });
  return { text, digest: Digest.of(text).toString(), layerDigest };
}

describe('PutImage', () => {
  it('stores the manifest under the tag, as /v2/ would, and answers the image', async () => {
    const m = await manifestText();
    const out = await f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageTag: 'v1' });
    expect(out).toEqual({
      image: {
        registryId: ACCOUNT,
        repositoryName: REPO,
        imageId: { imageDigest: m.digest, imageTag: 'v1' },
        imageManifest: m.text,
        imageManifestMediaType: OCI_MANIFEST,
      },
    });
    const stored = await f.registry.manifests.get(REPO, { tag: 'v1' });
    expect(stored.digest).toBe(m.digest);
    expect(stored.content.toString()).toBe(m.text);
  });

  it('takes the media type from imageManifestMediaType when the manifest has none, and pushes by digest without a tag', async () => {
    const m = await manifestText('y', DOCKER_MANIFEST, false);
    const out = await f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageManifestMediaType: DOCKER_MANIFEST, imageDigest: m.digest });
    expect(out.image.imageId).toEqual({ imageDigest: m.digest });
    expect(out.image.imageManifestMediaType).toBe(DOCKER_MANIFEST);
    expect((await f.images.manifest(REPO, m.digest))?.mediaType).toBe(DOCKER_MANIFEST);
    expect(await f.images.tagsOf(REPO, m.digest)).toEqual([]);
  });

  it('stores the manifest under a sha512 digest when imageDigest is one, with the tag', async () => {
    const m = await manifestText('z');
    const sha512 = Digest.of(m.text, 'sha512').toString();
    const out = await f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageDigest: sha512, imageTag: 'v512' });
    expect(out.image.imageId).toEqual({ imageDigest: sha512, imageTag: 'v512' });
    expect(await f.images.tagDigest(REPO, 'v512')).toBe(sha512);
    expect(await f.images.manifest(REPO, m.digest)).toBeUndefined();
  });

  it('answers ImageAlreadyExistsException for the same manifest and tag, and adds a new tag to an existing manifest', async () => {
    const m = await manifestText();
    await f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageTag: 'v1' });
    await expectEcrError(
      f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageTag: 'v1' }),
      'ImageAlreadyExistsException',
      `Image with digest '${m.digest}' and tag 'v1' already exists in the repository with name '${REPO}' in registry with id '${ACCOUNT}'`,
    );
    await expectEcrError(f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text }), 'ImageAlreadyExistsException', /tag 'null'/);
    await f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageTag: 'latest' });
    expect(await f.images.tagsOf(REPO, m.digest)).toEqual(['latest', 'v1']);
  });

  it('refuses to move an immutable tag with ECR message, and allows a new one', async () => {
    f.immutable.add(REPO);
    const first = await manifestText('a');
    const second = await manifestText('b');
    await f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: first.text, imageTag: 'v1' });
    await expectEcrError(
      f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: second.text, imageTag: 'v1' }),
      'ImageTagAlreadyExistsException',
      `The image tag 'v1' already exists in the '${REPO}' repository and cannot be overwritten because the tag is immutable.`,
    );
    expect(await f.images.tagDigest(REPO, 'v1')).toBe(first.digest);
    await f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: second.text, imageTag: 'v2' });
    expect(await f.images.tagDigest(REPO, 'v2')).toBe(second.digest);
  });

  it('answers LayersNotFoundException for a layer the repository lacks, ReferencedImagesNotFoundException for a missing child', async () => {
    const missing = `sha256:${'1'.repeat(64)}`;
    const image = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: missing, size: 3 },
      layers: [],
    });
    await expectEcrError(
      f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: image, imageTag: 'v1' }),
      'LayersNotFoundException',
      `Layers with digests '[${missing}]' required for pushing image into repository with name '${REPO}' in the registry with id '${ACCOUNT}' do not exist`,
    );
    const list = JSON.stringify({ schemaVersion: 2, mediaType: DOCKER_LIST, manifests: [{ mediaType: DOCKER_MANIFEST, digest: missing, size: 10 }] });
    await expectEcrError(f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: list, imageTag: 'multi' }), 'ReferencedImagesNotFoundException', missing);
    expect(await f.images.tagDigest(REPO, 'v1')).toBeUndefined();
  });

  it('answers InvalidParameterException for what is not a manifest, ImageDigestDoesNotMatchException for a wrong digest', async () => {
    await expectEcrError(f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: '{not json' }), 'InvalidParameterException', /imageManifest/);
    await expectEcrError(f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: '{"schemaVersion":1}' }), 'InvalidParameterException');
    const m = await manifestText();
    await expectEcrError(
      f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageManifestMediaType: DOCKER_MANIFEST }),
      'InvalidParameterException',
      /does not match/,
    );
    await expectEcrError(
      f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageDigest: `sha256:${'2'.repeat(64)}` }),
      'ImageDigestDoesNotMatchException',
    );
    await expectEcrError(f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageDigest: 'md5:abc' }), 'InvalidParameterException');
    await expectEcrError(f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageTag: '-bad' }), 'InvalidParameterException', /imageTag/);
    await expectEcrError(f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: '' }), 'ValidationException', /imageManifest/);
    await expectEcrError(f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageTag: 'a'.repeat(301) }), 'ValidationException', /imageTag/);
    expect(await f.images.manifest(REPO, m.digest)).toBeUndefined();
  });

  it('needs the repository and the push right', async () => {
    const m = await manifestText();
    await expectEcrError(f.call(ops, 'PutImage', { repositoryName: 'team/none', imageManifest: m.text }), 'RepositoryNotFoundException');
    await expectEcrError(
      f.call(ops, 'PutImage', { repositoryName: REPO, imageManifest: m.text, imageTag: 'v1' }, { may: (_r, a) => a !== 'push' }),
      'AccessDeniedException',
    );
    expect(await f.images.manifest(REPO, m.digest)).toBeUndefined();
  });
});

describe('BatchDeleteImage', () => {
  it('by tag removes the tag; by the last tag, the image too', async () => {
    const img = await f.pushImage(REPO, { tag: 'v1' });
    await f.registry.manifests.put(REPO, { tag: 'latest' }, img.body, img.mediaType);
    const first = await f.call(ops, 'BatchDeleteImage', { repositoryName: REPO, imageIds: [{ imageTag: 'latest' }] });
    expect(first).toEqual({ imageIds: [{ imageDigest: img.digest, imageTag: 'latest' }], failures: [] });
    expect(await f.images.manifest(REPO, img.digest)).toBeDefined();
    expect(await f.images.tagsOf(REPO, img.digest)).toEqual(['v1']);

    const last = await f.call(ops, 'BatchDeleteImage', { repositoryName: REPO, imageIds: [{ imageTag: 'v1' }] });
    expect(last.imageIds).toEqual([{ imageDigest: img.digest, imageTag: 'v1' }]);
    expect(await f.images.manifest(REPO, img.digest)).toBeUndefined();
  });

  it('by digest removes the image and every tag, answering one id per tag', async () => {
    const img = await f.pushImage(REPO, { tag: 'a' });
    await f.registry.manifests.put(REPO, { tag: 'b' }, img.body, img.mediaType);
    const untagged = await f.pushImage(REPO, { layers: ['u'] });
    const out = await f.call(ops, 'BatchDeleteImage', { repositoryName: REPO, imageIds: [{ imageDigest: img.digest }, { imageDigest: untagged.digest }] });
    expect(out.failures).toEqual([]);
    expect(out.imageIds).toEqual([
      { imageDigest: img.digest, imageTag: 'a' },
      { imageDigest: img.digest, imageTag: 'b' },
      { imageDigest: untagged.digest },
    ]);
    expect(await f.images.manifest(REPO, img.digest)).toBeUndefined();
    expect(await f.images.tagDigest(REPO, 'a')).toBeUndefined();
    expect(await f.images.manifest(REPO, untagged.digest)).toBeUndefined();
  });

  it('keeps a child of a manifest list: by digest it fails, by its last tag the tag alone goes', async () => {
    const child = await f.pushImage(REPO, { tag: 'child', layers: ['c'] });
    const index = await f.pushIndex(REPO, [child], { tag: 'multi' });
    const out = await f.call(ops, 'BatchDeleteImage', { repositoryName: REPO, imageIds: [{ imageDigest: child.digest }, { imageTag: 'child' }] });
    expect(out.failures).toEqual([
      {
        imageId: { imageDigest: child.digest },
        failureCode: 'ImageReferencedByManifestList',
        failureReason: `Requested image referenced by manifest list: [${index.digest}]`,
      },
    ]);
    expect(out.imageIds).toEqual([{ imageDigest: child.digest, imageTag: 'child' }]);
    expect(await f.images.manifest(REPO, child.digest)).toBeDefined();
    // Once the list is gone, the child may go.
    await f.call(ops, 'BatchDeleteImage', { repositoryName: REPO, imageIds: [{ imageTag: 'multi' }] });
    expect(await f.images.manifest(REPO, index.digest)).toBeUndefined();
    const again = await f.call(ops, 'BatchDeleteImage', { repositoryName: REPO, imageIds: [{ imageDigest: child.digest }] });
    expect(again).toEqual({ imageIds: [{ imageDigest: child.digest }], failures: [] });
  });

  it('answers a failure for each id it cannot delete, with ECR codes', async () => {
    const img = await f.pushImage(REPO, { tag: 'v1' });
    const other = await f.pushImage(REPO, { tag: 'v2', layers: ['o'] });
    const out = await f.call(ops, 'BatchDeleteImage', {
      repositoryName: REPO,
      imageIds: [{ imageTag: 'gone' }, {}, { imageDigest: 'sha256:nothex' }, { imageDigest: img.digest, imageTag: 'v2' }, { imageDigest: `sha256:${'3'.repeat(64)}` }],
    });
    expect(out.imageIds).toEqual([]);
    expect(out.failures).toEqual([
      { imageId: { imageTag: 'gone' }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' },
      { imageId: {}, failureCode: 'MissingDigestAndTag', failureReason: 'Invalid request parameters: both tag and digest cannot be null' },
      { imageId: { imageDigest: 'sha256:nothex' }, failureCode: 'InvalidImageDigest', failureReason: expect.stringContaining('regex') },
      { imageId: { imageDigest: img.digest, imageTag: 'v2' }, failureCode: 'ImageTagDoesNotMatchDigest', failureReason: expect.any(String) },
      { imageId: { imageDigest: `sha256:${'3'.repeat(64)}` }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' },
    ]);
    expect(await f.images.manifest(REPO, img.digest)).toBeDefined();
    expect(await f.images.manifest(REPO, other.digest)).toBeDefined();
  });

  it('with digest and tag together removes the image when they agree', async () => {
    const img = await f.pushImage(REPO, { tag: 'v1' });
    const out = await f.call(ops, 'BatchDeleteImage', { repositoryName: REPO, imageIds: [{ imageDigest: img.digest, imageTag: 'v1' }] });
    expect(out.imageIds).toEqual([{ imageDigest: img.digest, imageTag: 'v1' }]);
    expect(await f.images.manifest(REPO, img.digest)).toBeUndefined();
  });

  it('needs the delete right, imageIds, and a known repository', async () => {
    const img = await f.pushImage(REPO, { tag: 'v1' });
    await expectEcrError(
      f.call(ops, 'BatchDeleteImage', { repositoryName: REPO, imageIds: [{ imageTag: 'v1' }] }, { may: (_r, a) => a !== 'delete' }),
      'AccessDeniedException',
    );
    expect(await f.images.manifest(REPO, img.digest)).toBeDefined();
    await expectEcrError(f.call(ops, 'BatchDeleteImage', { repositoryName: REPO }), 'ValidationException', /imageIds/);
    await expectEcrError(f.call(ops, 'BatchDeleteImage', { repositoryName: 'team/none', imageIds: [{ imageTag: 'v1' }] }), 'RepositoryNotFoundException');
  });
});
