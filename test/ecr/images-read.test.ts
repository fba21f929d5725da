// ListImages, DescribeImages, BatchGetImage and ListImageReferrers, driven with a hand-built
// OperationContext over a real registry.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { imageOperations as ops } from '../../src/ecr/operations/images.js';
import { ACCOUNT, DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST, expectEcrError, openFixture, type Fixture } from './images-fixture.js';

const REPO = 'team/app';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
  f.repositories.add(REPO);
});
afterEach(async () => {
  await f.close();
});

type Id = { imageDigest: string; imageTag?: string };
const byId = (a: Id, b: Id) => (a.imageDigest + (a.imageTag ?? '')).localeCompare(b.imageDigest + (b.imageTag ?? ''));

describe('ListImages', () => {
  it('lists one id per tag and one per untagged manifest, filtered by tag status', async () => {
    const a = await f.pushImage(REPO, { tag: 'v1', layers: ['a'] });
    await f.registry.manifests.put(REPO, { tag: 'latest' }, a.body, a.mediaType);
    const b = await f.pushImage(REPO, { layers: ['b'] }); // untagged

    const any = await f.call(ops, 'ListImages', { repositoryName: REPO });
    expect([...any.imageIds].sort(byId)).toEqual(
      [{ imageDigest: a.digest, imageTag: 'latest' }, { imageDigest: a.digest, imageTag: 'v1' }, { imageDigest: b.digest }].sort(byId),
    );
    expect(any.nextToken).toBeUndefined();

    const tagged = await f.call(ops, 'ListImages', { repositoryName: REPO, filter: { tagStatus: 'TAGGED' } });
    expect(tagged.imageIds).toEqual([
      { imageDigest: a.digest, imageTag: 'latest' },
      { imageDigest: a.digest, imageTag: 'v1' },
    ]);
    const untagged = await f.call(ops, 'ListImages', { repositoryName: REPO, filter: { tagStatus: 'UNTAGGED' } });
    expect(untagged.imageIds).toEqual([{ imageDigest: b.digest }]);
    // Nothing is archived here.
    const archived = await f.call(ops, 'ListImages', { repositoryName: REPO, filter: { imageStatus: 'ARCHIVED' } });
    expect(archived.imageIds).toEqual([]);
  });

  it('pages with maxResults and nextToken, splitting the tags of one manifest across pages', async () => {
    const a = await f.pushImage(REPO, { tag: 't1', layers: ['a'] });
    for (const tag of ['t2', 't3', 't4']) await f.registry.manifests.put(REPO, { tag }, a.body, a.mediaType);
    await f.pushImage(REPO, { layers: ['b'] });
    await f.pushImage(REPO, { tag: 'other', layers: ['c'] });
    const all = (await f.call(ops, 'ListImages', { repositoryName: REPO })).imageIds as Id[];
    expect(all).toHaveLength(6);

    for (const status of ['ANY', 'TAGGED', 'UNTAGGED']) {
      const expected = (await f.call(ops, 'ListImages', { repositoryName: REPO, filter: { tagStatus: status } })).imageIds;
      const seen: Id[] = [];
      let token: string | undefined;
      let pages = 0;
      do {
        const page = await f.call(ops, 'ListImages', {
          repositoryName: REPO,
          maxResults: 2,
          filter: { tagStatus: status },
          ...(token ? { nextToken: token } : {}),
        });
        expect(page.imageIds.length).toBeLessThanOrEqual(2);
        seen.push(...page.imageIds);
        token = page.nextToken;
        pages++;
      } while (token && pages < 10);
      expect(seen).toEqual(expected);
    }
  });

  it('answers an empty list for a repository ECR knows but that holds nothing', async () => {
    f.repositories.add('team/empty');
    expect((await f.call(ops, 'ListImages', { repositoryName: 'team/empty' })).imageIds).toEqual([]);
  });

  it('refuses bad input with ValidationException, a bad token with InvalidParameterException', async () => {
    await expectEcrError(f.call(ops, 'ListImages', {}), 'ValidationException', /'repositoryName' failed to satisfy constraint: Member must not be null/);
    await expectEcrError(f.call(ops, 'ListImages', { repositoryName: REPO, maxResults: 0 }), 'ValidationException', /greater than or equal to 1/);
    await expectEcrError(f.call(ops, 'ListImages', { repositoryName: REPO, maxResults: 1001 }), 'ValidationException', /less than or equal to 1000/);
    await expectEcrError(f.call(ops, 'ListImages', { repositoryName: REPO, filter: { tagStatus: 'SOME' } }), 'ValidationException', /enum value set/);
    await expectEcrError(f.call(ops, 'ListImages', { repositoryName: 'Bad Name' }), 'ValidationException', /regular expression pattern/);
    await expectEcrError(f.call(ops, 'ListImages', { repositoryName: REPO, maxResults: '5' }), 'SerializationException');
    await expectEcrError(f.call(ops, 'ListImages', { repositoryName: REPO, nextToken: 'not a token!' }), 'InvalidParameterException', /nextToken/);
    const junk = Buffer.from('[1,2]').toString('base64url');
    await expectEcrError(f.call(ops, 'ListImages', { repositoryName: REPO, nextToken: junk }), 'InvalidParameterException', /nextToken/);
  });

  it('answers RepositoryNotFoundException for an unknown repository or another registry, AccessDeniedException without pull', async () => {
    await expectEcrError(
      f.call(ops, 'ListImages', { repositoryName: 'team/none' }),
      'RepositoryNotFoundException',
      `The repository with name 'team/none' does not exist in the registry with id '${ACCOUNT}'`,
    );
    await expectEcrError(f.call(ops, 'ListImages', { repositoryName: REPO, registryId: '999999999999' }), 'RepositoryNotFoundException', /999999999999/);
    // The right is checked first: a caller without it learns nothing of what exists.
    const noPull = { may: () => false };
    await expectEcrError(f.call(ops, 'ListImages', { repositoryName: 'team/none' }, noPull), 'AccessDeniedException', /ecr:Test/);
  });
});

describe('DescribeImages', () => {
  it('describes an image as ECR does: tags, size of its layers, push time in seconds, media types', async () => {
    const before = Date.now();
    const img = await f.pushImage(REPO, { tag: 'v1', layers: ['aaaa', 'bb'], configMediaType: 'application/vnd.docker.container.image.v1+json' });
    await f.registry.manifests.put(REPO, { tag: 'latest' }, img.body, img.mediaType);
    const { imageDetails, nextToken } = await f.call(ops, 'DescribeImages', { repositoryName: REPO });
    expect(nextToken).toBeUndefined();
    expect(imageDetails).toHaveLength(1);
    const d = imageDetails[0];
    expect(d).toMatchObject({
      registryId: ACCOUNT,
      repositoryName: REPO,
      imageDigest: img.digest,
      imageTags: ['latest', 'v1'],
      imageManifestMediaType: OCI_MANIFEST,
      artifactMediaType: 'application/vnd.docker.container.image.v1+json',
    });
    // The layers as pushed, not the config nor the manifest.
    expect(d.imageSizeInBytes).toBe(img.layerSizes[0]! + img.layerSizes[1]!);
    expect(d.imageSizeInBytes).toBe('layer:aaaa'.length + 'layer:bb'.length);
    expect(d.imagePushedAt).toBeGreaterThanOrEqual(Math.floor(before / 1000));
    expect(d.imagePushedAt).toBeLessThan(Date.now() / 1000 + 1);
    expect(d.lastRecordedPullTime).toBeUndefined();
    expect(d.subjectManifestDigest).toBeUndefined();
  });

  it('gives an index the largest size of its children, and reports referrers with their subject', async () => {
    const small = await f.pushImage(REPO, { layers: ['s'] });
    const big = await f.pushImage(REPO, { layers: ['bigger-layer', 'and another one'] });
    const index = await f.pushIndex(REPO, [small, big], { tag: 'multi' });
    const sig = await f.pushImage(REPO, {
      layers: ['signature'],
      extra: { artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json', subject: { mediaType: OCI_MANIFEST, digest: big.digest, size: big.body.length } },
    });
    const { imageDetails } = await f.call(ops, 'DescribeImages', { repositoryName: REPO, imageIds: [{ imageTag: 'multi' }, { imageDigest: sig.digest }] });
    expect(imageDetails.map((d: { imageDigest: string }) => d.imageDigest)).toEqual([index.digest, sig.digest]);
    expect(imageDetails[0].imageSizeInBytes).toBe(big.layerSizes.reduce((a, b) => a + b, 0));
    expect(imageDetails[0].imageManifestMediaType).toBe('application/vnd.oci.image.index.v1+json');
    expect(imageDetails[0].artifactMediaType).toBeUndefined();
    expect(imageDetails[1]).toMatchObject({
      subjectManifestDigest: big.digest,
      artifactMediaType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
      imageSizeInBytes: 'layer:signature'.length,
    });
    expect(imageDetails[1].imageTags).toBeUndefined();
  });

  it('answers ImageNotFoundException with ECR message for an id that is not there, and refuses paging with ids', async () => {
    await f.pushImage(REPO, { tag: 'v1' });
    await expectEcrError(
      f.call(ops, 'DescribeImages', { repositoryName: REPO, imageIds: [{ imageTag: 'v1' }, { imageTag: 'nope' }] }),
      'ImageNotFoundException',
      `The image with imageId {imageDigest:'null', imageTag:'nope'} does not exist within the repository with name '${REPO}' in the registry with id '${ACCOUNT}'`,
    );
    const missing = `sha256:${'0'.repeat(64)}`;
    await expectEcrError(f.call(ops, 'DescribeImages', { repositoryName: REPO, imageIds: [{ imageDigest: missing }] }), 'ImageNotFoundException', missing);
    await expectEcrError(f.call(ops, 'DescribeImages', { repositoryName: REPO, imageIds: [{ imageTag: 'v1' }], maxResults: 5 }), 'InvalidParameterException');
    await expectEcrError(f.call(ops, 'DescribeImages', { repositoryName: REPO, imageIds: [{ imageDigest: 'sha256:xyz' }] }), 'InvalidParameterException', /digest/);
    await expectEcrError(f.call(ops, 'DescribeImages', { repositoryName: REPO, imageIds: [] }), 'ValidationException', /length greater than or equal to 1/);
    await expectEcrError(f.call(ops, 'DescribeImages', { repositoryName: REPO, imageIds: [{}] }), 'InvalidParameterException', /both tag and digest cannot be null/);
  });

  it('pages in digest order and filters by tag status', async () => {
    const pushed = [];
    for (let i = 0; i < 5; i++) pushed.push(await f.pushImage(REPO, { layers: [`l${i}`], ...(i % 2 === 0 ? { tag: `t${i}` } : {}) }));
    const digests: string[] = [];
    let token: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await f.call(ops, 'DescribeImages', { repositoryName: REPO, maxResults: 2, ...(token ? { nextToken: token } : {}) });
      expect(page.imageDetails.length).toBeLessThanOrEqual(2);
      digests.push(...page.imageDetails.map((d: { imageDigest: string }) => d.imageDigest));
      token = page.nextToken;
      if (!token) break;
    }
    expect(digests).toEqual(pushed.map((p) => p.digest).sort());
    const untagged = await f.call(ops, 'DescribeImages', { repositoryName: REPO, filter: { tagStatus: 'UNTAGGED' } });
    expect(untagged.imageDetails.map((d: { imageDigest: string }) => d.imageDigest).sort()).toEqual([pushed[1]!.digest, pushed[3]!.digest].sort());
  });

  it('reports lastRecordedPullTime once the image was pulled', async () => {
    const img = await f.pushImage(REPO, { tag: 'v1' });
    const before = Date.now();
    await f.call(ops, 'BatchGetImage', { repositoryName: REPO, imageIds: [{ imageTag: 'v1' }] });
    const [d] = (await f.call(ops, 'DescribeImages', { repositoryName: REPO })).imageDetails;
    expect(d.imageDigest).toBe(img.digest);
    expect(d.lastRecordedPullTime).toBeGreaterThanOrEqual(before / 1000);
    // Still there once the pulls are written to the index.
    await f.registry.pulls.flush();
    const [again] = (await f.call(ops, 'DescribeImages', { repositoryName: REPO })).imageDetails;
    expect(again.lastRecordedPullTime).toBe(d.lastRecordedPullTime);
  });
});

describe('BatchGetImage', () => {
  it('returns the manifests asked for, and a failure for each id it cannot', async () => {
    const a = await f.pushImage(REPO, { tag: 'v1', layers: ['a'] });
    const b = await f.pushImage(REPO, { tag: 'v2', layers: ['b'] });
    const { images, failures } = await f.call(ops, 'BatchGetImage', {
      repositoryName: REPO,
      imageIds: [
        { imageTag: 'v1' },
        { imageDigest: b.digest },
        { imageTag: 'gone' },
        { imageDigest: a.digest, imageTag: 'v2' },
        {},
        { imageDigest: 'sha256:zz' },
      ],
    });
    expect(images).toEqual([
      { registryId: ACCOUNT, repositoryName: REPO, imageId: { imageDigest: a.digest, imageTag: 'v1' }, imageManifest: a.body.toString(), imageManifestMediaType: OCI_MANIFEST },
      { registryId: ACCOUNT, repositoryName: REPO, imageId: { imageDigest: b.digest }, imageManifest: b.body.toString(), imageManifestMediaType: OCI_MANIFEST },
    ]);
    expect(failures.map((x: { failureCode: string }) => x.failureCode)).toEqual([
      'ImageNotFound',
      'ImageTagDoesNotMatchDigest',
      'MissingDigestAndTag',
      'InvalidImageDigest',
    ]);
    expect(failures[0]).toEqual({ imageId: { imageTag: 'gone' }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' });
  });

  it('honours acceptedMediaTypes: an index falls back to its linux/amd64 image, another type fails', async () => {
    const amd = await f.pushImage(REPO, { layers: ['amd'], mediaType: DOCKER_MANIFEST });
    const arm = await f.pushImage(REPO, { layers: ['arm'], mediaType: DOCKER_MANIFEST });
    await f.pushIndex(
      REPO,
      [
        { ...arm, platform: { os: 'linux', architecture: 'arm64' } },
        { ...amd, platform: { os: 'linux', architecture: 'amd64' } },
      ],
      { tag: 'multi', mediaType: 'application/vnd.docker.distribution.manifest.list.v2+json' },
    );
    const oci = await f.pushImage(REPO, { tag: 'oci', layers: ['o'] });
    const { images, failures } = await f.call(ops, 'BatchGetImage', {
      repositoryName: REPO,
      imageIds: [{ imageTag: 'multi' }, { imageDigest: oci.digest }],
      acceptedMediaTypes: [DOCKER_MANIFEST],
    });
    expect(images).toHaveLength(1);
    expect(images[0].imageId.imageDigest).toBe(amd.digest);
    expect(images[0].imageManifestMediaType).toBe(DOCKER_MANIFEST);
    expect(failures).toEqual([{ imageId: { imageDigest: oci.digest }, failureCode: 'ImageNotFound', failureReason: expect.stringContaining(OCI_MANIFEST) }]);
  });

  it('records a pull of each image it returns, and of none it does not', async () => {
    const a = await f.pushImage(REPO, { tag: 'v1', layers: ['a'] });
    const b = await f.pushImage(REPO, { tag: 'v2', layers: ['b'] });
    await f.call(ops, 'BatchGetImage', { repositoryName: REPO, imageIds: [{ imageTag: 'v1' }, { imageTag: 'nope' }] });
    expect(await f.registry.pulls.lastPulled(REPO, a.digest)).toBeTypeOf('number');
    expect(await f.registry.pulls.lastPulled(REPO, b.digest)).toBeUndefined();
  });

  it('needs imageIds and the pull right', async () => {
    await expectEcrError(f.call(ops, 'BatchGetImage', { repositoryName: REPO }), 'ValidationException', /imageIds/);
    await expectEcrError(f.call(ops, 'BatchGetImage', { repositoryName: REPO, imageIds: [{ imageTag: 'v1' }] }, { may: (_r, a) => a !== 'pull' }), 'AccessDeniedException');
    const many = Array.from({ length: 101 }, (_, i) => ({ imageTag: `t${i}` }));
    await expectEcrError(f.call(ops, 'BatchGetImage', { repositoryName: REPO, imageIds: many }), 'ValidationException', /less than or equal to 100/);
  });
});

describe('ListImageReferrers', () => {
  it('lists the artifacts of a subject, filtered by artifact type, in pages', async () => {
    const subject = await f.pushImage(REPO, { tag: 'v1', layers: ['s'] });
    const refer = (type: string, layer: string) =>
      f.pushImage(REPO, { layers: [layer], extra: { artifactType: type, subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.body.length } } });
    const sigs = [await refer('application/vnd.example.sig', 'sig1'), await refer('application/vnd.example.sig', 'sig2')];
    const sbom = await refer('application/spdx+json', 'sbom');
    await f.pushImage(REPO, { layers: ['unrelated'] });

    const all = await f.call(ops, 'ListImageReferrers', { repositoryName: REPO, subjectId: { imageDigest: subject.digest } });
    expect(all.referrers.map((r: { digest: string }) => r.digest)).toEqual([...sigs, sbom].map((s) => s.digest).sort());
    expect(all.referrers.find((r: { digest: string }) => r.digest === sbom.digest)).toEqual({
      digest: sbom.digest,
      mediaType: OCI_MANIFEST,
      size: sbom.body.length,
      artifactType: 'application/spdx+json',
      artifactStatus: 'ACTIVE',
    });

    const onlySigs = await f.call(ops, 'ListImageReferrers', {
      repositoryName: REPO,
      subjectId: { imageDigest: subject.digest },
      filter: { artifactTypes: ['application/vnd.example.sig'] },
      maxResults: 1,
    });
    expect(onlySigs.referrers).toHaveLength(1);
    const next = await f.call(ops, 'ListImageReferrers', {
      repositoryName: REPO,
      subjectId: { imageDigest: subject.digest },
      filter: { artifactTypes: ['application/vnd.example.sig'] },
      maxResults: 1,
      nextToken: onlySigs.nextToken,
    });
    expect([onlySigs.referrers[0].digest, next.referrers[0].digest]).toEqual(sigs.map((s) => s.digest).sort());
    expect(next.nextToken).toBeUndefined();

    const none = await f.call(ops, 'ListImageReferrers', { repositoryName: REPO, subjectId: { imageDigest: sbom.digest } });
    expect(none.referrers).toEqual([]);
  });

  it('validates its input as the model does', async () => {
    await expectEcrError(f.call(ops, 'ListImageReferrers', { repositoryName: REPO }), 'ValidationException', /subjectId/);
    const subjectId = { imageDigest: `sha256:${'a'.repeat(64)}` };
    await expectEcrError(f.call(ops, 'ListImageReferrers', { repositoryName: REPO, subjectId, maxResults: 51 }), 'ValidationException', /less than or equal to 50/);
    await expectEcrError(
      f.call(ops, 'ListImageReferrers', { repositoryName: REPO, subjectId, filter: { artifactTypes: ['a', 'b', 'c', 'd', 'e', 'f'] } }),
      'ValidationException',
      /less than or equal to 5/,
    );
    await expectEcrError(f.call(ops, 'ListImageReferrers', { repositoryName: REPO, subjectId: { imageDigest: 'nope' } }), 'InvalidParameterException');
  });
});

it('an OCI config type is the artifactMediaType of a plain image', async () => {
  f.repositories.add('team/plain');
  await f.pushImage('team/plain', { tag: 'x' });
  const [d] = (await f.call(ops, 'DescribeImages', { repositoryName: 'team/plain' })).imageDetails;
  expect(d.artifactMediaType).toBe(OCI_CONFIG);
});
