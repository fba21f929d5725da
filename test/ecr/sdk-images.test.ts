// The image operations through the real @aws-sdk/client-ecr against a running registry:
// ListImages, DescribeImages, BatchGetImage, PutImage, BatchDeleteImage and ListImageReferrers,
// with their shapes, filters, paging and errors. Images are pushed over /v2/ as user AWS
// (docker's way) or with PutImage. (images-sdk.test.ts has the push-describe-delete round trip.)
import {
  BatchDeleteImageCommand,
  BatchGetImageCommand,
  CreateRepositoryCommand,
  DescribeImagesCommand,
  ListImageReferrersCommand,
  ListImagesCommand,
  PutImageCommand,
  type ECRClient,
  type ImageIdentifier,
} from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  DOCKER_CONFIG,
  DOCKER_MANIFEST,
  OCI_CONFIG,
  OCI_INDEX,
  OCI_MANIFEST,
  awsLogin,
  indexOf,
  invalidAt,
  makeImage,
  manifestOf,
  pushBlob,
  pushImage,
  pushManifest,
  sha256,
  v2,
  type Manifest,
} from './sdk-fixtures.js';
import { ACCOUNT, REGION, failure, startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

let registry: EcrTestRegistry;
let admin: ECRClient;
let dev: ECRClient;
let reader: ECRClient;
let auth: string;

beforeAll(async () => {
  registry = await startEcrRegistry();
  admin = registry.client('admin');
  dev = registry.client('dev');
  reader = registry.client('reader');
  auth = await awsLogin(registry);
});
afterAll(async () => {
  await registry?.destroy();
});

const notFound = (name: string, registryId = ACCOUNT) => `The repository with name '${name}' does not exist in the registry with id '${registryId}'`;
const denied = (user: string, operation: string, name: string) =>
  `User: arn:aws:iam::${ACCOUNT}:user/${user} is not authorized to perform: ecr:${operation} on resource: arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${name} because no identity-based policy allows the ecr:${operation} action`;

async function repository(name: string): Promise<string> {
  await admin.send(new CreateRepositoryCommand({ repositoryName: name }));
  return name;
}

/** `count` distinct manifests over one config and one layer, each tagged `<prefix><i>` (two digits). */
async function manyImages(repo: string, count: number, prefix = 't'): Promise<Map<string, string>> {
  const config = await pushBlob(registry, auth, repo, JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const layer = await pushBlob(registry, auth, repo, 'one shared layer');
  const byTag = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const tag = `${prefix}${String(i).padStart(2, '0')}`;
    const m = manifestOf(
      { schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }], annotations: { n: tag } },
      OCI_MANIFEST,
    );
    await pushManifest(registry, auth, repo, tag, m);
    byTag.set(tag, m.digest);
  }
  return byTag;
}

describe('ListImages', () => {
  let repo: string;
  let a: Manifest;
  let b: Manifest;
  beforeAll(async () => {
    repo = await repository('team/list');
    a = await pushImage(registry, auth, repo, 'v1', 'list-a');
    await pushManifest(registry, auth, repo, 'latest', a);
    b = await pushImage(registry, auth, repo, undefined, 'list-b');
  });

  it('lists one id per tag and one per untagged image, filtered by tagStatus', async () => {
    const all = await reader.send(new ListImagesCommand({ repositoryName: repo }));
    const expected = [{ imageDigest: a.digest, imageTag: 'latest' }, { imageDigest: a.digest, imageTag: 'v1' }, { imageDigest: b.digest }];
    expect(sortIds(all.imageIds!)).toEqual(sortIds(expected));
    expect(all.nextToken).toBeUndefined();
    const tagged = await reader.send(new ListImagesCommand({ repositoryName: repo, filter: { tagStatus: 'TAGGED' } }));
    expect(sortIds(tagged.imageIds!)).toEqual(sortIds(expected.slice(0, 2)));
    const untagged = await reader.send(new ListImagesCommand({ repositoryName: repo, filter: { tagStatus: 'UNTAGGED' } }));
    expect(untagged.imageIds).toEqual([{ imageDigest: b.digest }]);
    const any = await reader.send(new ListImagesCommand({ repositoryName: repo, filter: { tagStatus: 'ANY' }, registryId: ACCOUNT }));
    expect(any.imageIds).toHaveLength(3);
  });

  it('walks 25 tags 10 at a time with nextToken, nothing repeated or lost', async () => {
    const paged = await repository('team/list-pages');
    const byTag = await manyImages(paged, 25);
    const seen: ImageIdentifier[] = [];
    const pages: number[] = [];
    let nextToken: string | undefined;
    for (let n = 0; n < 10; n++) {
      const out = await reader.send(new ListImagesCommand({ repositoryName: paged, maxResults: 10, ...(nextToken ? { nextToken } : {}) }));
      pages.push(out.imageIds!.length);
      seen.push(...out.imageIds!);
      nextToken = out.nextToken;
      if (!nextToken) break;
    }
    expect(pages).toEqual([10, 10, 5]);
    const keys = seen.map((id) => `${id.imageDigest}:${id.imageTag}`);
    expect(new Set(keys).size).toBe(25);
    expect(sortIds(seen)).toEqual(sortIds([...byTag].map(([imageTag, imageDigest]) => ({ imageDigest, imageTag }))));
  });

  it('refuses maxResults outside 1..1000, an unknown tagStatus and a token it did not give', async () => {
    for (const maxResults of [0, 1001]) {
      const f = await failure(admin.send(new ListImagesCommand({ repositoryName: repo, maxResults })));
      expect(f.name).toBe('InvalidParameterException');
      expect(f.message).toBe(invalidAt('maxResults', `Member must have value ${maxResults === 0 ? 'greater than or equal to 1' : 'less than or equal to 1000'}`));
    }
    const status = await failure(admin.send(new ListImagesCommand({ repositoryName: repo, filter: { tagStatus: 'SOME' as never } })));
    expect(status.name).toBe('InvalidParameterException');
    expect(status.message).toBe(invalidAt('filter.tagStatus', 'Member must satisfy enum value set: [TAGGED, UNTAGGED, ANY]'));
    const token = await failure(admin.send(new ListImagesCommand({ repositoryName: repo, nextToken: 'bogus!' })));
    expect(token.name).toBe('InvalidParameterException');
  });

  it('answers RepositoryNotFoundException with ECR\'s message, and InvalidParameterException for a bad name', async () => {
    const f = await failure(admin.send(new ListImagesCommand({ repositoryName: 'team/nothing-here' })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/nothing-here'));
    const other = await failure(admin.send(new ListImagesCommand({ repositoryName: repo, registryId: '210987654321' })));
    expect(other.name).toBe('RepositoryNotFoundException');
    expect(other.message).toBe(notFound(repo, '210987654321'));
    const bad = await failure(admin.send(new ListImagesCommand({ repositoryName: 'Team/List' })));
    expect(bad.name).toBe('InvalidParameterException');
    const none = await failure(admin.send(new ListImagesCommand({} as never)));
    expect(none.name).toBe('InvalidParameterException');
    expect(none.message).toBe(invalidAt('repositoryName', 'Member must not be null'));
  });

  it('refuses a caller without pull on the repository', async () => {
    const limited = await startEcrRegistry({ access: { admins: ['admin'], repositories: { 'team/**': { users: { reader: ['pull'] } } } } });
    try {
      await limited.client('admin').send(new CreateRepositoryCommand({ repositoryName: 'ops/hidden' }));
      const f = await failure(limited.client('reader').send(new ListImagesCommand({ repositoryName: 'ops/hidden' })));
      expect(f.name).toBe('AccessDeniedException');
      expect(f.message).toBe(denied('reader', 'ListImages', 'ops/hidden'));
      // Without the right, a repository that does not exist looks the same: nothing is learnt.
      const g = await failure(limited.client('reader').send(new ListImagesCommand({ repositoryName: 'ops/absent' })));
      expect(g.name).toBe('AccessDeniedException');
    } finally {
      await limited.destroy();
    }
  });
});

describe('DescribeImages', () => {
  let repo: string;
  let docker: Manifest;
  let oci: Manifest;
  let amd: Manifest;
  let arm: Manifest;
  let index: Manifest;
  let before: number;
  beforeAll(async () => {
    repo = await repository('team/describe');
    before = Date.now();
    docker = await pushImage(registry, auth, repo, 'docker', 'describe-docker', { docker: true });
    await pushManifest(registry, auth, repo, 'alias', docker);
    oci = await pushImage(registry, auth, repo, undefined, 'describe-oci', { configMediaType: 'application/vnd.example.config.v1+json' });
    amd = await makeImage(registry, auth, repo, 'describe-amd');
    arm = await makeImage(registry, auth, repo, 'describe-arm-a-larger-layer', { architecture: 'arm64' });
    await pushManifest(registry, auth, repo, undefined, amd);
    await pushManifest(registry, auth, repo, undefined, arm);
    index = indexOf([amd, arm]);
    await pushManifest(registry, auth, repo, 'multi', index);
  });

  it('describes an image field by field', async () => {
    const out = await reader.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageTag: 'docker' }] }));
    expect(out.imageDetails).toHaveLength(1);
    const d = out.imageDetails![0]!;
    expect(Object.keys(d).sort()).toEqual(
      ['artifactMediaType', 'imageDigest', 'imageManifestMediaType', 'imagePushedAt', 'imageSizeInBytes', 'imageTags', 'registryId', 'repositoryName'].sort(),
    );
    expect(d.registryId).toBe(ACCOUNT);
    expect(d.repositoryName).toBe(repo);
    expect(d.imageDigest).toBe(docker.digest);
    expect(d.imageTags).toEqual(['alias', 'docker']);
    expect(d.imageSizeInBytes).toBe(docker.layerSize);
    expect(d.imagePushedAt).toBeInstanceOf(Date);
    expect(d.imagePushedAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect(d.imagePushedAt!.getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    expect(d.imageManifestMediaType).toBe(DOCKER_MANIFEST);
    expect(d.artifactMediaType).toBe(DOCKER_CONFIG);
    expect(d.lastRecordedPullTime).toBeUndefined();
  });

  it('gives an untagged image no imageTags, the config type as artifactMediaType, and an index the size of its largest child', async () => {
    const out = await reader.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageDigest: oci.digest }, { imageTag: 'multi' }, { imageDigest: oci.digest }] }));
    expect(out.imageDetails!.map((d) => d.imageDigest)).toEqual([oci.digest, index.digest]);
    const [o, i] = out.imageDetails!;
    expect(o!.imageTags).toBeUndefined();
    expect(o!.imageManifestMediaType).toBe(OCI_MANIFEST);
    expect(o!.artifactMediaType).toBe('application/vnd.example.config.v1+json');
    expect(i!.imageTags).toEqual(['multi']);
    expect(i!.imageManifestMediaType).toBe(OCI_INDEX);
    expect(i!.imageSizeInBytes).toBe(Math.max(amd.layerSize, arm.layerSize));
    expect(arm.layerSize).toBeGreaterThan(amd.layerSize);
  });

  it('filters by tagStatus without imageIds', async () => {
    const all = await reader.send(new DescribeImagesCommand({ repositoryName: repo }));
    expect(all.imageDetails!.map((d) => d.imageDigest).sort()).toEqual([docker, oci, amd, arm, index].map((m) => m.digest).sort());
    const tagged = await reader.send(new DescribeImagesCommand({ repositoryName: repo, filter: { tagStatus: 'TAGGED' } }));
    expect(tagged.imageDetails!.map((d) => d.imageDigest).sort()).toEqual([docker.digest, index.digest].sort());
    const untagged = await reader.send(new DescribeImagesCommand({ repositoryName: repo, filter: { tagStatus: 'UNTAGGED' } }));
    expect(untagged.imageDetails!.map((d) => d.imageDigest).sort()).toEqual([oci.digest, amd.digest, arm.digest].sort());
  });

  it('walks 25 images 10 at a time with nextToken, nothing repeated or lost', async () => {
    const paged = await repository('team/describe-pages');
    const byTag = await manyImages(paged, 25);
    const seen: string[] = [];
    const pages: number[] = [];
    let nextToken: string | undefined;
    for (let n = 0; n < 10; n++) {
      const out = await reader.send(new DescribeImagesCommand({ repositoryName: paged, maxResults: 10, ...(nextToken ? { nextToken } : {}) }));
      pages.push(out.imageDetails!.length);
      for (const d of out.imageDetails!) {
        expect(d.imageTags).toHaveLength(1);
        expect(byTag.get(d.imageTags![0]!)).toBe(d.imageDigest);
        seen.push(d.imageDigest!);
      }
      nextToken = out.nextToken;
      if (!nextToken) break;
    }
    expect(pages).toEqual([10, 10, 5]);
    expect(new Set(seen).size).toBe(25);
    expect([...seen].sort()).toEqual([...byTag.values()].sort());
  });

  it('refuses maxResults or nextToken with imageIds', async () => {
    const first = await admin.send(new DescribeImagesCommand({ repositoryName: repo, maxResults: 1 }));
    expect(first.nextToken).toBeDefined();
    const withToken = await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageTag: 'docker' }], nextToken: first.nextToken })));
    expect(withToken.name).toBe('InvalidParameterException');
    expect(withToken.message).toBe('Invalid parameter: maxResults and nextToken cannot be used when images are specified with imageIds');
    const withMax = await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageTag: 'docker' }], maxResults: 10 })));
    expect(withMax.name).toBe('InvalidParameterException');
  });

  it('answers ImageNotFoundException with ECR\'s message for an image it does not hold', async () => {
    const f = await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageTag: 'docker' }, { imageTag: 'nope' }] })));
    expect(f.name).toBe('ImageNotFoundException');
    expect(f.status).toBe(400);
    expect(f.message).toBe(`The image with imageId {imageDigest:'null', imageTag:'nope'} does not exist within the repository with name '${repo}' in the registry with id '${ACCOUNT}'`);
    const missing = sha256('absent');
    const g = await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageDigest: missing }] })));
    expect(g.name).toBe('ImageNotFoundException');
    expect(g.message).toContain(`imageDigest:'${missing}'`);
    // A tag that points elsewhere than the digest given: not found either.
    const h = await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageDigest: oci.digest, imageTag: 'docker' }] })));
    expect(h.name).toBe('ImageNotFoundException');
  });

  it('refuses a tag over 300 characters, an invalid digest or tag, with InvalidParameterException', async () => {
    const long = 'a'.repeat(301);
    const f = await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageTag: long }] })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toBe(invalidAt('imageIds.1.member.imageTag', 'Member must have length less than or equal to 300'));
    const digest = await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageDigest: 'sha256:not-hex' }] })));
    expect(digest.name).toBe('InvalidParameterException');
    const tag = await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageTag: '-dash' }] })));
    expect(tag.name).toBe('InvalidParameterException');
    const empty = await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [] })));
    expect(empty.name).toBe('InvalidParameterException');
    expect(empty.message).toBe(invalidAt('imageIds', 'Member must have length greater than or equal to 1'));
    const max = await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, maxResults: 1001 })));
    expect(max.name).toBe('InvalidParameterException');
    expect(max.message).toBe(invalidAt('maxResults', 'Member must have value less than or equal to 1000'));
  });

  it('answers RepositoryNotFoundException for a repository it does not hold', async () => {
    const f = await failure(admin.send(new DescribeImagesCommand({ repositoryName: 'team/describe-none' })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/describe-none'));
  });
});

describe('BatchGetImage', () => {
  let repo: string;
  let image: Manifest;
  let other: Manifest;
  let amd: Manifest;
  let arm: Manifest;
  let index: Manifest;
  beforeAll(async () => {
    repo = await repository('team/get');
    image = await pushImage(registry, auth, repo, 'v1', 'get-a');
    other = await pushImage(registry, auth, repo, 'v2', 'get-b');
    amd = await makeImage(registry, auth, repo, 'get-amd');
    arm = await makeImage(registry, auth, repo, 'get-arm', { architecture: 'arm64' });
    await pushManifest(registry, auth, repo, undefined, amd);
    await pushManifest(registry, auth, repo, undefined, arm);
    index = indexOf([arm, amd], ['arm64', 'amd64']);
    await pushManifest(registry, auth, repo, 'multi', index);
  });

  it('gets manifests by tag and by digest, byte for byte', async () => {
    const out = await reader.send(new BatchGetImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'v1' }, { imageDigest: other.digest }, { imageDigest: image.digest, imageTag: 'v1' }] }));
    expect(out.failures).toEqual([]);
    expect(out.images).toEqual([
      { registryId: ACCOUNT, repositoryName: repo, imageId: { imageDigest: image.digest, imageTag: 'v1' }, imageManifest: image.text, imageManifestMediaType: OCI_MANIFEST },
      { registryId: ACCOUNT, repositoryName: repo, imageId: { imageDigest: other.digest }, imageManifest: other.text, imageManifestMediaType: OCI_MANIFEST },
      { registryId: ACCOUNT, repositoryName: repo, imageId: { imageDigest: image.digest, imageTag: 'v1' }, imageManifest: image.text, imageManifestMediaType: OCI_MANIFEST },
    ]);
  });

  it('reports each id it cannot get in failures, with ECR\'s codes', async () => {
    const out = await admin.send(
      new BatchGetImageCommand({
        repositoryName: repo,
        imageIds: [
          { imageTag: 'missing' },
          { imageDigest: sha256('nothing') },
          { imageDigest: 'sha256:zz' },
          {},
          { imageTag: 'x'.repeat(129) },
          { imageDigest: image.digest, imageTag: 'v2' },
          { imageTag: 'v2' },
        ],
      }),
    );
    expect(out.images!.map((i) => i.imageId)).toEqual([{ imageDigest: other.digest, imageTag: 'v2' }]);
    expect(out.failures).toEqual([
      { imageId: { imageTag: 'missing' }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' },
      { imageId: { imageDigest: sha256('nothing') }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' },
      { imageId: { imageDigest: 'sha256:zz' }, failureCode: 'InvalidImageDigest', failureReason: expect.any(String) },
      { imageId: {}, failureCode: 'MissingDigestAndTag', failureReason: expect.any(String) },
      { imageId: { imageTag: 'x'.repeat(129) }, failureCode: 'InvalidImageTag', failureReason: expect.any(String) },
      { imageId: { imageDigest: image.digest, imageTag: 'v2' }, failureCode: 'ImageTagDoesNotMatchDigest', failureReason: expect.any(String) },
    ]);
  });

  it('answers an index as it is, or its linux/amd64 image when only image manifests are accepted', async () => {
    const asIs = await admin.send(new BatchGetImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'multi' }] }));
    expect(asIs.images![0]).toMatchObject({ imageId: { imageDigest: index.digest, imageTag: 'multi' }, imageManifest: index.text, imageManifestMediaType: OCI_INDEX });
    const narrowed = await admin.send(new BatchGetImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'multi' }], acceptedMediaTypes: [OCI_MANIFEST] }));
    expect(narrowed.failures).toEqual([]);
    expect(narrowed.images![0]).toMatchObject({ imageId: { imageDigest: amd.digest, imageTag: 'multi' }, imageManifest: amd.text, imageManifestMediaType: OCI_MANIFEST });
  });

  it('reports a manifest whose type is not accepted as a failure (a code of the model\'s enum), saying why', async () => {
    const out = await admin.send(new BatchGetImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'v1' }], acceptedMediaTypes: [DOCKER_MANIFEST] }));
    expect(out.images).toEqual([]);
    expect(out.failures).toEqual([
      { imageId: { imageTag: 'v1' }, failureCode: 'ImageNotFound', failureReason: `The image's manifest media type ${OCI_MANIFEST} is not among the accepted media types` },
    ]);
  });

  it('refuses no ids, more than 100, a tag over 300 characters, and answers RepositoryNotFoundException', async () => {
    const none = await failure(admin.send(new BatchGetImageCommand({ repositoryName: repo } as never)));
    expect(none.name).toBe('InvalidParameterException');
    expect(none.message).toBe(invalidAt('imageIds', 'Member must not be null'));
    const many = await failure(admin.send(new BatchGetImageCommand({ repositoryName: repo, imageIds: Array.from({ length: 101 }, (_, i) => ({ imageTag: `t${i}` })) })));
    expect(many.name).toBe('InvalidParameterException');
    expect(many.message).toBe(invalidAt('imageIds', 'Member must have length less than or equal to 100'));
    const long = await failure(admin.send(new BatchGetImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'b'.repeat(301) }] })));
    expect(long.name).toBe('InvalidParameterException');
    expect(long.message).toBe(invalidAt('imageIds.1.member.imageTag', 'Member must have length less than or equal to 300'));
    const f = await failure(admin.send(new BatchGetImageCommand({ repositoryName: 'team/get-none', imageIds: [{ imageTag: 'v1' }] })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/get-none'));
  });
});

describe('PutImage', () => {
  let repo: string;
  beforeAll(async () => {
    repo = await repository('team/put');
  });

  it('puts a manifest under a tag and answers the image', async () => {
    const m = await makeImage(registry, auth, repo, 'put-a', { docker: true });
    const out = await dev.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text, imageTag: 'v1', imageManifestMediaType: DOCKER_MANIFEST }));
    expect(out.image).toEqual({
      registryId: ACCOUNT,
      repositoryName: repo,
      imageId: { imageDigest: m.digest, imageTag: 'v1' },
      imageManifest: m.text,
      imageManifestMediaType: DOCKER_MANIFEST,
    });
    // /v2/ serves what PutImage stored.
    const pulled = await v2(registry, auth, 'GET', `/v2/${repo}/manifests/v1`, { headers: { accept: DOCKER_MANIFEST } });
    expect(pulled.status).toBe(200);
    expect(pulled.body.toString('utf8')).toBe(m.text);
    expect(pulled.headers.get('docker-content-digest')).toBe(m.digest);
  });

  it('puts a manifest without a tag, adds a tag to it, moves a mutable tag', async () => {
    const m = await makeImage(registry, auth, repo, 'put-b');
    const untagged = await admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text }));
    expect(untagged.image!.imageId).toEqual({ imageDigest: m.digest });
    expect(untagged.image!.imageManifestMediaType).toBe(OCI_MANIFEST);
    const tagged = await admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text, imageTag: 'b' }));
    expect(tagged.image!.imageId).toEqual({ imageDigest: m.digest, imageTag: 'b' });
    const n = await makeImage(registry, auth, repo, 'put-c');
    await admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: n.text, imageTag: 'b' }));
    const listed = await admin.send(new ListImagesCommand({ repositoryName: repo, filter: { tagStatus: 'TAGGED' } }));
    expect(listed.imageIds).toContainEqual({ imageDigest: n.digest, imageTag: 'b' });
    expect(listed.imageIds).not.toContainEqual({ imageDigest: m.digest, imageTag: 'b' });
  });

  it('answers ImageAlreadyExistsException with ECR\'s message for the same manifest and tag, or the same manifest untagged', async () => {
    const m = await makeImage(registry, auth, repo, 'put-d');
    await admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text, imageTag: 'd' }));
    const f = await failure(admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text, imageTag: 'd' })));
    expect(f.name).toBe('ImageAlreadyExistsException');
    expect(f.message).toBe(`Image with digest '${m.digest}' and tag 'd' already exists in the repository with name '${repo}' in registry with id '${ACCOUNT}'`);
    const g = await failure(admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text })));
    expect(g.name).toBe('ImageAlreadyExistsException');
    expect(g.message).toBe(`Image with digest '${m.digest}' and tag 'null' already exists in the repository with name '${repo}' in registry with id '${ACCOUNT}'`);
  });

  it('checks imageDigest against the manifest', async () => {
    const m = await makeImage(registry, auth, repo, 'put-e');
    const ok = await admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text, imageDigest: m.digest, imageTag: 'e' }));
    expect(ok.image!.imageId).toEqual({ imageDigest: m.digest, imageTag: 'e' });
    const n = await makeImage(registry, auth, repo, 'put-f');
    const wrong = sha256('something else');
    const f = await failure(admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: n.text, imageDigest: wrong })));
    expect(f.name).toBe('ImageDigestDoesNotMatchException');
    expect(f.message).toBe(`The provided image digest '${wrong}' does not match the digest calculated for the manifest: '${n.digest}'`);
    const bad = await failure(admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: n.text, imageDigest: 'md5:abc' })));
    expect(bad.name).toBe('InvalidParameterException');
    expect((await failure(admin.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageDigest: n.digest }] })))).name).toBe('ImageNotFoundException');
  });

  it('answers LayersNotFoundException for layers the repository lacks, ReferencedImagesNotFoundException for an index\'s missing children', async () => {
    const layer = sha256('a layer never pushed');
    const config = await pushBlob(registry, auth, repo, '{"os":"linux","architecture":"amd64"}');
    const m = manifestOf({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: 10 }] }, OCI_MANIFEST);
    const f = await failure(admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text, imageTag: 'layers' })));
    expect(f.name).toBe('LayersNotFoundException');
    expect(f.message).toBe(`Layers with digests '[${layer}]' required for pushing image into repository with name '${repo}' in the registry with id '${ACCOUNT}' do not exist`);
    const child = await makeImage(registry, auth, repo, 'put-child');
    const index = indexOf([child]);
    const g = await failure(admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: index.text, imageTag: 'list' })));
    expect(g.name).toBe('ReferencedImagesNotFoundException');
    expect(g.message).toContain(child.digest);
    const listed = await admin.send(new ListImagesCommand({ repositoryName: repo, filter: { tagStatus: 'TAGGED' } }));
    expect(listed.imageIds!.map((i) => i.imageTag)).not.toContain('layers');
    expect(listed.imageIds!.map((i) => i.imageTag)).not.toContain('list');
  });

  it('refuses a manifest that is not one with InvalidParameterException', async () => {
    for (const imageManifest of ['not json', '{"schemaVersion":2}', '[]']) {
      const f = await failure(admin.send(new PutImageCommand({ repositoryName: repo, imageManifest, imageTag: 'junk' })));
      expect(f.name, imageManifest).toBe('InvalidParameterException');
      expect(f.message).toMatch(/^Invalid parameter at 'imageManifest'/);
    }
  });

  it('refuses a tag over 300 characters, and one docker cannot take, with InvalidParameterException', async () => {
    const m = await makeImage(registry, auth, repo, 'put-g');
    const long = 't'.repeat(301);
    const f = await failure(admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text, imageTag: long })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toBe(invalidAt('imageTag', 'Member must have length less than or equal to 300'));
    for (const imageTag of ['t'.repeat(129), '.dot', 'sp ace']) {
      const g = await failure(admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text, imageTag })));
      expect(g.name, imageTag).toBe('InvalidParameterException');
    }
    const empty = await failure(admin.send(new PutImageCommand({ repositoryName: repo, imageManifest: '', imageTag: 'x' })));
    expect(empty.name).toBe('InvalidParameterException');
    expect(empty.message).toBe(invalidAt('imageManifest', 'Member must have length greater than or equal to 1'));
  });

  it('answers RepositoryNotFoundException, and refuses the reader and the dev key outside team/', async () => {
    const m = await makeImage(registry, auth, repo, 'put-h');
    const f = await failure(admin.send(new PutImageCommand({ repositoryName: 'team/put-none', imageManifest: m.text, imageTag: 'x' })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/put-none'));
    const r = await failure(reader.send(new PutImageCommand({ repositoryName: repo, imageManifest: m.text, imageTag: 'x' })));
    expect(r.name).toBe('AccessDeniedException');
    expect(r.message).toBe(denied('reader', 'PutImage', repo));
    const opsRepo = await repository('ops/put');
    const d = await failure(dev.send(new PutImageCommand({ repositoryName: opsRepo, imageManifest: m.text, imageTag: 'x' })));
    expect(d.name).toBe('AccessDeniedException');
    expect(d.message).toBe(denied('dev', 'PutImage', opsRepo));
    expect((await admin.send(new ListImagesCommand({ repositoryName: opsRepo }))).imageIds).toEqual([]);
  });
});

describe('BatchDeleteImage', () => {
  it('by tag removes the tag; the last tag takes the image with it', async () => {
    const repo = await repository('team/delete-tags');
    const m = await pushImage(registry, auth, repo, 'a', 'delete-tags');
    await pushManifest(registry, auth, repo, 'b', m);
    const first = await dev.send(new BatchDeleteImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'a' }] }));
    expect(first.imageIds).toEqual([{ imageDigest: m.digest, imageTag: 'a' }]);
    expect(first.failures).toEqual([]);
    expect((await admin.send(new ListImagesCommand({ repositoryName: repo }))).imageIds).toEqual([{ imageDigest: m.digest, imageTag: 'b' }]);
    await admin.send(new BatchDeleteImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'b' }] }));
    expect((await admin.send(new ListImagesCommand({ repositoryName: repo }))).imageIds).toEqual([]);
    expect((await v2(registry, auth, 'GET', `/v2/${repo}/manifests/${m.digest}`, { headers: { accept: OCI_MANIFEST } })).status).toBe(404);
  });

  it('by digest removes the image with every tag, one id per tag', async () => {
    const repo = await repository('team/delete-digest');
    const m = await pushImage(registry, auth, repo, 'x', 'delete-digest');
    await pushManifest(registry, auth, repo, 'y', m);
    const u = await pushImage(registry, auth, repo, undefined, 'delete-untagged');
    const out = await admin.send(new BatchDeleteImageCommand({ repositoryName: repo, imageIds: [{ imageDigest: m.digest }, { imageDigest: u.digest }] }));
    expect(sortIds(out.imageIds!)).toEqual(sortIds([{ imageDigest: m.digest, imageTag: 'x' }, { imageDigest: m.digest, imageTag: 'y' }, { imageDigest: u.digest }]));
    expect(out.failures).toEqual([]);
    expect((await admin.send(new ListImagesCommand({ repositoryName: repo }))).imageIds).toEqual([]);
  });

  it('reports what it cannot delete in failures: not found, invalid, a child of an index', async () => {
    const repo = await repository('team/delete-failures');
    const amd = await makeImage(registry, auth, repo, 'df-amd');
    const arm = await makeImage(registry, auth, repo, 'df-arm', { architecture: 'arm64' });
    await pushManifest(registry, auth, repo, undefined, amd);
    await pushManifest(registry, auth, repo, undefined, arm);
    const index = indexOf([amd, arm]);
    await pushManifest(registry, auth, repo, 'multi', index);
    const out = await admin.send(
      new BatchDeleteImageCommand({
        repositoryName: repo,
        imageIds: [{ imageTag: 'gone' }, { imageDigest: sha256('gone') }, { imageDigest: 'nope' }, {}, { imageDigest: amd.digest }],
      }),
    );
    expect(out.imageIds).toEqual([]);
    expect(out.failures).toEqual([
      { imageId: { imageTag: 'gone' }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' },
      { imageId: { imageDigest: sha256('gone') }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' },
      { imageId: { imageDigest: 'nope' }, failureCode: 'InvalidImageDigest', failureReason: expect.any(String) },
      { imageId: {}, failureCode: 'MissingDigestAndTag', failureReason: expect.any(String) },
      { imageId: { imageDigest: amd.digest }, failureCode: 'ImageReferencedByManifestList', failureReason: `Requested image referenced by manifest list: [${index.digest}]` },
    ]);
    expect((await admin.send(new DescribeImagesCommand({ repositoryName: repo }))).imageDetails).toHaveLength(3);
    // The index first, then its children.
    await admin.send(new BatchDeleteImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'multi' }] }));
    const after = await admin.send(new BatchDeleteImageCommand({ repositoryName: repo, imageIds: [{ imageDigest: amd.digest }, { imageDigest: arm.digest }] }));
    expect(after.failures).toEqual([]);
    expect((await admin.send(new DescribeImagesCommand({ repositoryName: repo }))).imageDetails).toEqual([]);
  });

  it('refuses no ids and a tag over 300 characters, answers RepositoryNotFoundException, refuses the reader and the dev key outside team/', async () => {
    const repo = await repository('ops/delete-guarded');
    await pushImage(registry, auth, repo, 'keep', 'delete-guarded');
    const none = await failure(admin.send(new BatchDeleteImageCommand({ repositoryName: repo, imageIds: [] })));
    expect(none.name).toBe('InvalidParameterException');
    expect(none.message).toBe(invalidAt('imageIds', 'Member must have length greater than or equal to 1'));
    const long = await failure(admin.send(new BatchDeleteImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'k'.repeat(301) }] })));
    expect(long.name).toBe('InvalidParameterException');
    expect(long.message).toBe(invalidAt('imageIds.1.member.imageTag', 'Member must have length less than or equal to 300'));
    const f = await failure(admin.send(new BatchDeleteImageCommand({ repositoryName: 'team/delete-none', imageIds: [{ imageTag: 'x' }] })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/delete-none'));
    const r = await failure(reader.send(new BatchDeleteImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'keep' }] })));
    expect(r.name).toBe('AccessDeniedException');
    expect(r.message).toBe(denied('reader', 'BatchDeleteImage', repo));
    const d = await failure(dev.send(new BatchDeleteImageCommand({ repositoryName: repo, imageIds: [{ imageTag: 'keep' }] })));
    expect(d.name).toBe('AccessDeniedException');
    expect((await admin.send(new ListImagesCommand({ repositoryName: repo }))).imageIds!.map((i) => i.imageTag)).toEqual(['keep']);
  });
});

describe('ListImageReferrers', () => {
  let repo: string;
  let subject: Manifest;
  let sig: Manifest;
  let sbom: Manifest;
  beforeAll(async () => {
    repo = await repository('team/referrers');
    subject = await pushImage(registry, auth, repo, 'app', 'ref-subject');
    const about = { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.body.length };
    sig = await pushImage(registry, auth, repo, undefined, 'ref-sig', {
      extra: { artifactType: 'application/vnd.example.signature', subject: about, annotations: { 'org.example.signer': 'ci' } },
    });
    sbom = await pushImage(registry, auth, repo, undefined, 'ref-sbom', { extra: { artifactType: 'application/spdx+json', subject: about } });
  });

  it('lists the artifacts whose subject is the image, with ECR\'s referrer shape', async () => {
    const out = await reader.send(new ListImageReferrersCommand({ repositoryName: repo, subjectId: { imageDigest: subject.digest } }));
    expect(out.nextToken).toBeUndefined();
    const byDigest = new Map(out.referrers!.map((r) => [r.digest, r]));
    expect([...byDigest.keys()].sort()).toEqual([sig.digest, sbom.digest].sort());
    expect(byDigest.get(sig.digest)).toEqual({
      digest: sig.digest,
      mediaType: OCI_MANIFEST,
      artifactType: 'application/vnd.example.signature',
      size: sig.body.length,
      annotations: { 'org.example.signer': 'ci' },
      artifactStatus: 'ACTIVE',
    });
    expect(byDigest.get(sbom.digest)).toEqual({ digest: sbom.digest, mediaType: OCI_MANIFEST, artifactType: 'application/spdx+json', size: sbom.body.length, artifactStatus: 'ACTIVE' });
    // DescribeImages names the subject of each.
    const d = await reader.send(new DescribeImagesCommand({ repositoryName: repo, imageIds: [{ imageDigest: sig.digest }] }));
    expect(d.imageDetails![0]!.subjectManifestDigest).toBe(subject.digest);
    expect(d.imageDetails![0]!.artifactMediaType).toBe('application/vnd.example.signature');
  });

  it('filters by artifact type and pages with nextToken', async () => {
    const only = await reader.send(new ListImageReferrersCommand({ repositoryName: repo, subjectId: { imageDigest: subject.digest }, filter: { artifactTypes: ['application/spdx+json'] } }));
    expect(only.referrers!.map((r) => r.digest)).toEqual([sbom.digest]);
    const seen: string[] = [];
    let nextToken: string | undefined;
    for (let n = 0; n < 5; n++) {
      const out = await reader.send(new ListImageReferrersCommand({ repositoryName: repo, subjectId: { imageDigest: subject.digest }, maxResults: 1, ...(nextToken ? { nextToken } : {}) }));
      expect(out.referrers!.length).toBeLessThanOrEqual(1);
      seen.push(...out.referrers!.map((r) => r.digest!));
      nextToken = out.nextToken;
      if (!nextToken) break;
    }
    expect(seen.sort()).toEqual([sig.digest, sbom.digest].sort());
    const none = await reader.send(new ListImageReferrersCommand({ repositoryName: repo, subjectId: { imageDigest: sig.digest } }));
    expect(none.referrers).toEqual([]);
  });

  it('refuses no subject, an invalid digest, maxResults outside 1..50, and answers RepositoryNotFoundException', async () => {
    const missing = await failure(admin.send(new ListImageReferrersCommand({ repositoryName: repo } as never)));
    expect(missing.name).toBe('ValidationException');
    expect(missing.message).toContain("Value null at 'subjectId' failed to satisfy constraint: Member must not be null");
    const bad = await failure(admin.send(new ListImageReferrersCommand({ repositoryName: repo, subjectId: { imageDigest: 'latest' } })));
    expect(bad.name).toBe('InvalidParameterException');
    for (const maxResults of [0, 51]) {
      const f = await failure(admin.send(new ListImageReferrersCommand({ repositoryName: repo, subjectId: { imageDigest: subject.digest }, maxResults })));
      expect(f.name).toBe('ValidationException');
      expect(f.message).toContain(`Value ${maxResults} at 'maxResults' failed to satisfy constraint`);
    }
    const f = await failure(admin.send(new ListImageReferrersCommand({ repositoryName: 'team/referrers-none', subjectId: { imageDigest: subject.digest } })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/referrers-none'));
  });
});

function sortIds(ids: readonly ImageIdentifier[]): ImageIdentifier[] {
  return [...ids].sort((a, b) => `${a.imageDigest}:${a.imageTag ?? ''}`.localeCompare(`${b.imageDigest}:${b.imageTag ?? ''}`));
}
