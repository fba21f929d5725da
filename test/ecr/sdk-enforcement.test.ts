// What ECR's settings make the registry enforce on /v2/, seen as docker sees it (fetch with
// Basic AWS:<password> from GetAuthorizationToken) and checked through the real
// @aws-sdk/client-ecr: pushes to repositories that do not exist, creation on push (templates and
// `ecr.createonpush`), immutable tags with and without exclusions, and pull times.
import {
  BatchDeleteImageCommand,
  CreateRepositoryCommand,
  CreateRepositoryCreationTemplateCommand,
  DescribeImagesCommand,
  DescribeRepositoriesCommand,
  GetLifecyclePolicyCommand,
  GetRepositoryPolicyCommand,
  ListImagesCommand,
  ListTagsForResourceCommand,
  PutImageCommand,
  PutImageTagMutabilityCommand,
  type ECRClient,
} from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { awsLogin, indexOf, makeImage, pushImage, pushManifest, putManifest, sha256, v2, type Manifest } from './sdk-fixtures.js';
import { ACCOUNT, REGION, failure, startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

const notFoundMessage = (name: string) => `The repository with name '${name}' does not exist in the registry with id '${ACCOUNT}'`;
const immutableMessage = (tag: string, repo: string) =>
  `The image tag '${tag}' already exists in the '${repo}' repository and cannot be overwritten because the tag is immutable.`;

const LIFECYCLE = JSON.stringify({
  rules: [
    {
      rulePriority: 1,
      description: 'expire untagged images of auto-created repositories',
      selection: { tagStatus: 'untagged', countType: 'sinceImagePushed', countUnit: 'days', countNumber: 7 },
      action: { type: 'expire' },
    },
  ],
});
const REPO_POLICY = JSON.stringify({ Statement: [{ Sid: 'pull', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${ACCOUNT}:root` }, Action: 'ecr:BatchGetImage' }] });

describe('with ecr enabled and no creation on push', () => {
  let registry: EcrTestRegistry;
  let admin: ECRClient;
  let auth: string;
  beforeAll(async () => {
    registry = await startEcrRegistry();
    admin = registry.client('admin');
    auth = await awsLogin(registry);
    await admin.send(
      new CreateRepositoryCreationTemplateCommand({
        prefix: 'auto',
        appliedFor: ['CREATE_ON_PUSH'],
        imageTagMutability: 'IMMUTABLE',
        resourceTags: [{ Key: 'created-by', Value: 'push' }, { Key: 'team', Value: 'auto' }],
        lifecyclePolicy: LIFECYCLE,
        repositoryPolicy: REPO_POLICY,
      }),
    );
    await admin.send(
      new CreateRepositoryCreationTemplateCommand({
        prefix: 'auto/deep',
        appliedFor: ['CREATE_ON_PUSH'],
        imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION',
        imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'latest' }],
        resourceTags: [{ Key: 'depth', Value: '2' }],
      }),
    );
    await admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'mirror', appliedFor: ['PULL_THROUGH_CACHE', 'REPLICATION'], imageTagMutability: 'IMMUTABLE' }));
  });
  afterAll(async () => {
    await registry?.destroy();
  });

  it('challenges an anonymous /v2/ request as ECR does', async () => {
    const res = await v2(registry, undefined, 'GET', '/v2/');
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toBe(`Basic realm="${registry.url}/",service="ecr.amazonaws.com"`);
  });

  it('answers a push to a repository that does not exist with 404 NAME_UNKNOWN and ECR\'s message, and creates nothing', async () => {
    const name = 'team/ghost';
    const start = await v2(registry, auth, 'POST', `/v2/${name}/blobs/uploads/`);
    expect(start.status).toBe(404);
    expect(start.error).toMatchObject({ code: 'NAME_UNKNOWN', message: notFoundMessage(name) });
    const monolithic = await v2(registry, auth, 'POST', `/v2/${name}/blobs/uploads/?digest=${sha256('x')}`, { body: Buffer.from('x'), contentType: 'application/octet-stream' });
    expect(monolithic.status).toBe(404);
    expect(monolithic.error).toMatchObject({ code: 'NAME_UNKNOWN', message: notFoundMessage(name) });
    const manifest = await v2(registry, auth, 'PUT', `/v2/${name}/manifests/v1`, {
      body: Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [] })),
      contentType: 'application/vnd.oci.image.index.v1+json',
    });
    expect(manifest.status).toBe(404);
    expect(manifest.error).toMatchObject({ code: 'NAME_UNKNOWN', message: notFoundMessage(name) });
    await admin.send(new CreateRepositoryCommand({ repositoryName: 'team/mount-source' }));
    const source = await pushImage(registry, auth, 'team/mount-source', 'v1', 'mount-source');
    const mount = await v2(registry, auth, 'POST', `/v2/${name}/blobs/uploads/?mount=${source.layerDigests[0]}&from=team/mount-source`);
    expect(mount.status).toBe(404);
    expect(mount.error).toMatchObject({ code: 'NAME_UNKNOWN', message: notFoundMessage(name) });
    const f = await failure(admin.send(new DescribeRepositoriesCommand({ repositoryNames: [name] })));
    expect(f.name).toBe('RepositoryNotFoundException');
    // A template for other purposes creates nothing on push either.
    const mirrored = await v2(registry, auth, 'POST', '/v2/mirror/library/alpine/blobs/uploads/');
    expect(mirrored.status).toBe(404);
    expect(mirrored.error?.code).toBe('NAME_UNKNOWN');
  });

  it('creates the repository a CREATE_ON_PUSH template covers, with the template\'s settings', async () => {
    const name = 'auto/web';
    const image = await pushImage(registry, auth, name, 'v1', 'auto-web');
    const repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: [name] }))).repositories![0]!;
    expect(repo.repositoryName).toBe(name);
    expect(repo.repositoryArn).toBe(`arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${name}`);
    expect(repo.imageTagMutability).toBe('IMMUTABLE');
    expect(repo.createdAt).toBeInstanceOf(Date);
    const tags = await admin.send(new ListTagsForResourceCommand({ resourceArn: repo.repositoryArn }));
    expect(tags.tags).toEqual([{ Key: 'created-by', Value: 'push' }, { Key: 'team', Value: 'auto' }]);
    expect((await admin.send(new GetLifecyclePolicyCommand({ repositoryName: name }))).lifecyclePolicyText).toBe(LIFECYCLE);
    expect((await admin.send(new GetRepositoryPolicyCommand({ repositoryName: name }))).policyText).toBe(REPO_POLICY);
    expect((await admin.send(new ListImagesCommand({ repositoryName: name }))).imageIds).toEqual([{ imageDigest: image.digest, imageTag: 'v1' }]);
    // The template's mutability is enforced from the first push on.
    const other = await makeImage(registry, auth, name, 'auto-web-2');
    const moved = await putManifest(registry, auth, name, 'v1', other);
    expect(moved.status).toBe(400);
    expect(moved.error).toMatchObject({ code: 'TAG_INVALID', message: immutableMessage('v1', name) });
  });

  it('creates one repository when several pushes to a new name race', async () => {
    const name = 'auto/race';
    const pushes = await Promise.all(
      Array.from({ length: 8 }, (_, i) => v2(registry, auth, 'POST', `/v2/${name}/blobs/uploads/?digest=${sha256(`race ${i}`)}`, { body: Buffer.from(`race ${i}`), contentType: 'application/octet-stream' })),
    );
    expect(pushes.map((p) => p.status)).toEqual(Array(8).fill(201));
    const repos = (await admin.send(new DescribeRepositoriesCommand({}))).repositories!.filter((r) => r.repositoryName === name);
    expect(repos).toHaveLength(1);
    expect(repos[0]!.imageTagMutability).toBe('IMMUTABLE');
  });

  it('applies the template of the longest prefix that covers the name', async () => {
    const name = 'auto/deep/svc';
    await pushImage(registry, auth, name, 'latest', 'deep-1');
    const repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: [name] }))).repositories![0]!;
    expect(repo.imageTagMutability).toBe('IMMUTABLE_WITH_EXCLUSION');
    expect(repo.imageTagMutabilityExclusionFilters).toEqual([{ filterType: 'WILDCARD', filter: 'latest' }]);
    expect((await admin.send(new ListTagsForResourceCommand({ resourceArn: repo.repositoryArn }))).tags).toEqual([{ Key: 'depth', Value: '2' }]);
    expect((await failure(admin.send(new GetLifecyclePolicyCommand({ repositoryName: name })))).name).toBe('LifecyclePolicyNotFoundException');
    // `auto` covers auto/x, not a name that merely starts with it.
    const near = await v2(registry, auth, 'POST', '/v2/automatic/blobs/uploads/');
    expect(near.status).toBe(404);
    expect(near.error?.code).toBe('NAME_UNKNOWN');
  });

  it('serves a repository of 256 characters, the longest name CreateRepository takes, over /v2/', async () => {
    const name = `team/${'n'.repeat(251)}`;
    expect(name).toHaveLength(256);
    const created = await admin.send(new CreateRepositoryCommand({ repositoryName: name }));
    expect(created.repository!.repositoryName).toBe(name);
    // docker pushes and pulls what the ECR API created.
    const start = await v2(registry, auth, 'POST', `/v2/${name}/blobs/uploads/`);
    expect(start.status, start.body.toString('utf8')).toBe(202);
    const image = await pushImage(registry, auth, name, 'v1', 'longest-name');
    const pulled = await v2(registry, auth, 'GET', `/v2/${name}/manifests/v1`, { headers: { accept: image.mediaType } });
    expect(pulled.status).toBe(200);
    expect(pulled.headers.get('docker-content-digest')).toBe(image.digest);
  });

  describe('an IMMUTABLE repository', () => {
    const REPO = 'team/immutable';
    let v1: Manifest;
    beforeAll(async () => {
      await admin.send(new CreateRepositoryCommand({ repositoryName: REPO, imageTagMutability: 'IMMUTABLE' }));
      v1 = await pushImage(registry, auth, REPO, 'v1', 'immutable-v1');
    });

    it('refuses a manifest PUT that would move a tag with 400 TAG_INVALID and ECR\'s message, and keeps the tag where it was', async () => {
      const other = await makeImage(registry, auth, REPO, 'immutable-other');
      const res = await putManifest(registry, auth, REPO, 'v1', other);
      expect(res.status).toBe(400);
      expect(res.error).toMatchObject({ code: 'TAG_INVALID', message: immutableMessage('v1', REPO) });
      const head = await v2(registry, auth, 'HEAD', `/v2/${REPO}/manifests/v1`, { headers: { accept: other.mediaType } });
      expect(head.headers.get('docker-content-digest')).toBe(v1.digest);
    });

    it('takes the same digest under the same tag again, and the image by digest', async () => {
      const again = await putManifest(registry, auth, REPO, 'v1', v1);
      expect(again.status).toBe(201);
      expect(again.headers.get('docker-content-digest')).toBe(v1.digest);
      const byDigest = await putManifest(registry, auth, REPO, v1.digest, v1);
      expect(byDigest.status).toBe(201);
      expect((await admin.send(new ListImagesCommand({ repositoryName: REPO, filter: { tagStatus: 'TAGGED' } }))).imageIds).toEqual([{ imageDigest: v1.digest, imageTag: 'v1' }]);
    });

    it('takes a multi-platform push: children by digest, then an index over them under a new tag', async () => {
      const amd = await makeImage(registry, auth, REPO, 'immutable-amd');
      const arm = await makeImage(registry, auth, REPO, 'immutable-arm', { architecture: 'arm64' });
      expect((await putManifest(registry, auth, REPO, amd.digest, amd)).status).toBe(201);
      expect((await putManifest(registry, auth, REPO, arm.digest, arm)).status).toBe(201);
      const index = indexOf([amd, arm]);
      expect((await putManifest(registry, auth, REPO, 'multi', index)).status).toBe(201);
      // The same list pushed again (docker does, on a retry) is no move.
      expect((await putManifest(registry, auth, REPO, 'multi', index)).status).toBe(201);
      // Another list under that tag is.
      const other = indexOf([arm, amd], ['arm64', 'amd64']);
      const moved = await putManifest(registry, auth, REPO, 'multi', other);
      expect(moved.status).toBe(400);
      expect(moved.error).toMatchObject({ code: 'TAG_INVALID', message: immutableMessage('multi', REPO) });
      const d = await admin.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'multi' }] }));
      expect(d.imageDetails![0]!.imageDigest).toBe(index.digest);
    });

    it('answers PutImage moving an immutable tag with ImageTagAlreadyExistsException, and the same image with ImageAlreadyExistsException', async () => {
      const other = await makeImage(registry, auth, REPO, 'immutable-putimage');
      const f = await failure(admin.send(new PutImageCommand({ repositoryName: REPO, imageManifest: other.text, imageTag: 'v1' })));
      expect(f.name).toBe('ImageTagAlreadyExistsException');
      expect(f.status).toBe(400);
      expect(f.message).toBe(immutableMessage('v1', REPO));
      const same = await failure(admin.send(new PutImageCommand({ repositoryName: REPO, imageManifest: v1.text, imageTag: 'v1' })));
      expect(same.name).toBe('ImageAlreadyExistsException');
      // A new tag on an image is no move: allowed.
      const added = await admin.send(new PutImageCommand({ repositoryName: REPO, imageManifest: other.text, imageTag: 'v2' }));
      expect(added.image!.imageId).toEqual({ imageDigest: other.digest, imageTag: 'v2' });
    });

    it('lets a deleted tag be pushed again onto another image', async () => {
      const first = await pushImage(registry, auth, REPO, 'temp', 'immutable-temp-1');
      await admin.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'temp' }] }));
      const second = await makeImage(registry, auth, REPO, 'immutable-temp-2');
      expect((await putManifest(registry, auth, REPO, 'temp', second)).status).toBe(201);
      expect(second.digest).not.toBe(first.digest);
    });

    it('enforces a mutability set after the tags were pushed', async () => {
      const name = 'team/later-immutable';
      await admin.send(new CreateRepositoryCommand({ repositoryName: name }));
      await pushImage(registry, auth, name, 'stable', 'later-1');
      const moved = await makeImage(registry, auth, name, 'later-2');
      expect((await putManifest(registry, auth, name, 'stable', moved)).status).toBe(201);
      await admin.send(new PutImageTagMutabilityCommand({ repositoryName: name, imageTagMutability: 'IMMUTABLE' }));
      const third = await makeImage(registry, auth, name, 'later-3');
      const res = await putManifest(registry, auth, name, 'stable', third);
      expect(res.status).toBe(400);
      expect(res.error?.code).toBe('TAG_INVALID');
      await admin.send(new PutImageTagMutabilityCommand({ repositoryName: name, imageTagMutability: 'MUTABLE' }));
      expect((await putManifest(registry, auth, name, 'stable', third)).status).toBe(201);
    });
  });

  describe('exclusion filters', () => {
    it('IMMUTABLE_WITH_EXCLUSION with `latest`: latest moves, other tags do not', async () => {
      const REPO = 'team/excl-immutable';
      await admin.send(
        new CreateRepositoryCommand({ repositoryName: REPO, imageTagMutability: 'IMMUTABLE_WITH_EXCLUSION', imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'latest' }] }),
      );
      const a = await pushImage(registry, auth, REPO, 'latest', 'excl-a');
      await pushManifest(registry, auth, REPO, 'v1', a);
      const b = await makeImage(registry, auth, REPO, 'excl-b');
      expect((await putManifest(registry, auth, REPO, 'latest', b)).status).toBe(201);
      const moved = await putManifest(registry, auth, REPO, 'v1', b);
      expect(moved.status).toBe(400);
      expect(moved.error).toMatchObject({ code: 'TAG_INVALID', message: immutableMessage('v1', REPO) });
      // `latest` matches as a whole: `latest-rc` is not excluded.
      await pushManifest(registry, auth, REPO, 'latest-rc', a);
      const rc = await putManifest(registry, auth, REPO, 'latest-rc', b);
      expect(rc.status).toBe(400);
      const ids = (await admin.send(new ListImagesCommand({ repositoryName: REPO, filter: { tagStatus: 'TAGGED' } }))).imageIds!;
      expect(ids).toEqual(expect.arrayContaining([{ imageDigest: b.digest, imageTag: 'latest' }, { imageDigest: a.digest, imageTag: 'v1' }, { imageDigest: a.digest, imageTag: 'latest-rc' }]));
      const put = await failure(admin.send(new PutImageCommand({ repositoryName: REPO, imageManifest: b.text, imageTag: 'v1' })));
      expect(put.name).toBe('ImageTagAlreadyExistsException');
      const latest = await admin.send(new PutImageCommand({ repositoryName: REPO, imageManifest: a.text, imageTag: 'latest' }));
      expect(latest.image!.imageId).toEqual({ imageDigest: a.digest, imageTag: 'latest' });
    });

    it('MUTABLE_WITH_EXCLUSION with `release-*`: release tags do not move, others do', async () => {
      const REPO = 'team/excl-mutable';
      await admin.send(
        new CreateRepositoryCommand({ repositoryName: REPO, imageTagMutability: 'MUTABLE_WITH_EXCLUSION', imageTagMutabilityExclusionFilters: [{ filterType: 'WILDCARD', filter: 'release-*' }] }),
      );
      const a = await pushImage(registry, auth, REPO, 'release-1.0', 'mexcl-a');
      await pushManifest(registry, auth, REPO, 'dev', a);
      const b = await makeImage(registry, auth, REPO, 'mexcl-b');
      expect((await putManifest(registry, auth, REPO, 'dev', b)).status).toBe(201);
      const moved = await putManifest(registry, auth, REPO, 'release-1.0', b);
      expect(moved.status).toBe(400);
      expect(moved.error).toMatchObject({ code: 'TAG_INVALID', message: immutableMessage('release-1.0', REPO) });
    });
  });

  describe('lastRecordedPullTime', () => {
    it('appears in DescribeImages after a manifest GET (not a HEAD), before and after the pull times are flushed', async () => {
      const REPO = 'team/pulled';
      await admin.send(new CreateRepositoryCommand({ repositoryName: REPO }));
      const image = await pushImage(registry, auth, REPO, 'v1', 'pulled');
      const describe = async () => (await admin.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'v1' }] }))).imageDetails![0]!;
      expect((await describe()).lastRecordedPullTime).toBeUndefined();

      const head = await v2(registry, auth, 'HEAD', `/v2/${REPO}/manifests/v1`, { headers: { accept: image.mediaType } });
      expect(head.status).toBe(200);
      expect((await describe()).lastRecordedPullTime).toBeUndefined();

      const before = Date.now();
      const reader = await awsLogin(registry, 'reader');
      const get = await v2(registry, reader, 'GET', `/v2/${REPO}/manifests/v1`, { headers: { accept: image.mediaType } });
      expect(get.status).toBe(200);
      const pending = (await describe()).lastRecordedPullTime;
      expect(pending).toBeInstanceOf(Date);
      expect(pending!.getTime()).toBeGreaterThanOrEqual(before - 1000);
      expect(pending!.getTime()).toBeLessThanOrEqual(Date.now() + 1000);

      await registry.app.registry.pulls.flush();
      const flushed = (await describe()).lastRecordedPullTime;
      expect(flushed).toEqual(pending);
      // The other images of the repository were not pulled.
      const other = await pushImage(registry, auth, REPO, undefined, 'not-pulled');
      const d = await admin.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: [{ imageDigest: other.digest }] }));
      expect(d.imageDetails![0]!.lastRecordedPullTime).toBeUndefined();
    });
  });
});

describe('with ecr.createonpush: true', () => {
  let registry: EcrTestRegistry;
  let admin: ECRClient;
  let auth: string;
  beforeAll(async () => {
    registry = await startEcrRegistry({ ecr: { createonpush: true } });
    admin = registry.client('admin');
    auth = await awsLogin(registry);
  });
  afterAll(async () => {
    await registry?.destroy();
  });

  it('creates the repository a push names, with ECR\'s defaults', async () => {
    const name = 'team/created-on-push';
    const before = Date.now();
    const image = await pushImage(registry, auth, name, 'v1', 'cop');
    const repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: [name] }))).repositories![0]!;
    expect(repo).toMatchObject({
      repositoryName: name,
      registryId: ACCOUNT,
      repositoryArn: `arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${name}`,
      repositoryUri: `${new URL(registry.url).host}/${name}`,
      imageTagMutability: 'MUTABLE',
      imageScanningConfiguration: { scanOnPush: false },
      encryptionConfiguration: { encryptionType: 'AES256' },
    });
    expect(repo.createdAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
    expect((await admin.send(new ListTagsForResourceCommand({ resourceArn: repo.repositoryArn }))).tags).toEqual([]);
    expect((await failure(admin.send(new GetLifecyclePolicyCommand({ repositoryName: name })))).name).toBe('LifecyclePolicyNotFoundException');
    expect((await admin.send(new ListImagesCommand({ repositoryName: name }))).imageIds).toEqual([{ imageDigest: image.digest, imageTag: 'v1' }]);
    // MUTABLE: the tag moves.
    const other = await makeImage(registry, auth, name, 'cop-2');
    expect((await putManifest(registry, auth, name, 'v1', other)).status).toBe(201);
  });

  it('still applies a CREATE_ON_PUSH template where one covers the name', async () => {
    await admin.send(new CreateRepositoryCreationTemplateCommand({ prefix: 'locked', appliedFor: ['CREATE_ON_PUSH'], imageTagMutability: 'IMMUTABLE' }));
    await pushImage(registry, auth, 'locked/app', 'v1', 'locked');
    const repo = (await admin.send(new DescribeRepositoriesCommand({ repositoryNames: ['locked/app'] }))).repositories![0]!;
    expect(repo.imageTagMutability).toBe('IMMUTABLE');
  });

  it('does not create a repository for a caller who may not push there', async () => {
    const reader = await awsLogin(registry, 'reader');
    const res = await v2(registry, reader, 'POST', '/v2/team/reader-made/blobs/uploads/');
    expect(res.status).toBe(403);
    const dev = await awsLogin(registry, 'dev');
    const outside = await v2(registry, dev, 'POST', '/v2/ops/dev-made/blobs/uploads/');
    expect(outside.status).toBe(403);
    const list = await admin.send(new DescribeRepositoriesCommand({}));
    expect(list.repositories!.map((r) => r.repositoryName)).not.toContain('team/reader-made');
    expect(list.repositories!.map((r) => r.repositoryName)).not.toContain('ops/dev-made');
  });

  it('refuses a name ECR cannot create with NAME_INVALID', async () => {
    const res = await v2(registry, auth, 'POST', '/v2/x/blobs/uploads/');
    expect(res.status).toBe(400);
    expect(res.error?.code).toBe('NAME_INVALID');
  });
});
