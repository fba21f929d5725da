// The ECR API with the unchanged AWS CLI v2 and docker, as a user of Amazon ECR runs them:
// create a repository, log in with get-login-password, push and pull, describe, make tags
// immutable and see docker's re-push refused, push a multi-platform list to an immutable
// repository, preview and run a lifecycle policy, upload a layer through the layer API and pull
// it through /v2/, and delete the repository with --force.
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { basic, httpGet, importImage, said, startConfiguredRegistry, type ConfiguredRegistry } from './auth-support.js';
import { BUILT_CLI, dockerEnv, run, serverFaults, sha256, tempFolder, type RunResult } from './harness.js';

/** Debian's awscli package (v2); an `aws` earlier on PATH may be another version. */
const AWS = existsSync('/usr/bin/aws') ? '/usr/bin/aws' : 'aws';
const ACCOUNT = '123456789012';
const KEY = { id: 'AKIAOCIREGE2ETEST001', secret: 'e2e-secret-key-0123456789abcdef' };
const READER = { id: 'AKIAOCIREGE2EREADER1', secret: 'e2e-reader-key-0123456789abcdef' };

const dockerHost = inject('dockerHost');
let work: string;
let registry: ConfiguredRegistry;
let dockerAsCi: NodeJS.ProcessEnv;

function awsEnv(key = KEY): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: work,
    AWS_ACCESS_KEY_ID: key.id,
    AWS_SECRET_ACCESS_KEY: key.secret,
    AWS_DEFAULT_REGION: 'us-east-1',
    AWS_CONFIG_FILE: join(work, 'aws-config'),
    AWS_SHARED_CREDENTIALS_FILE: join(work, 'aws-credentials'),
    AWS_PAGER: '',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

/** `aws ecr <args> --endpoint-url <registry>`; resolves with the exit code and output. */
function ecr(args: string[], key = KEY): Promise<RunResult> {
  return run(AWS, ['ecr', ...args, '--endpoint-url', registry.url, '--output', 'json'], { env: awsEnv(key), allowFailure: true, timeoutMs: 60_000 });
}

/** The same, which must succeed; returns the parsed JSON output. */
async function ecrOk<T = Record<string, unknown>>(args: string[]): Promise<T> {
  const result = await ecr(args);
  expect(result.code, said(result)).toBe(0);
  return (result.stdout.trim() === '' ? {} : JSON.parse(result.stdout)) as T;
}

function docker(args: string[], allowFailure = false): Promise<RunResult> {
  return run('docker', args, { env: dockerAsCi, allowFailure, timeoutMs: 180_000 });
}

async function freshImage(ref: string): Promise<string> {
  return importImage(dockerAsCi, await tempFolder('img-', work), ref, `${ref} ${Date.now()} ${Math.random()}\n`);
}

/** The digest docker reports for a pushed reference. */
function pushedDigest(push: RunResult): string {
  const m = /digest: (sha256:[0-9a-f]{64})/.exec(push.stdout);
  if (!m) throw new Error(`no digest in docker push output:\n${said(push)}`);
  return m[1]!;
}

interface ImageDetail {
  imageDigest: string;
  imageTags?: string[];
  imageSizeInBytes: number;
  imagePushedAt: number | string;
  imageManifestMediaType: string;
}

async function describeImages(repo: string): Promise<ImageDetail[]> {
  return (await ecrOk<{ imageDetails: ImageDetail[] }>(['describe-images', '--repository-name', repo])).imageDetails;
}

beforeAll(async () => {
  work = await tempFolder('ocireg-e2e-ecr-');
  registry = await startConfiguredRegistry({
    work,
    config: {
      ecr: {
        enabled: true,
        accountid: ACCOUNT,
        region: 'us-east-1',
        credentials: [
          { accesskeyid: KEY.id, secretaccesskey: KEY.secret, user: 'ci' },
          { accesskeyid: READER.id, secretaccesskey: READER.secret, user: 'reader' },
        ],
      },
      access: {
        repositories: { '**': { users: { ci: ['pull', 'push', 'delete', 'manage'], reader: ['pull'] } } },
      },
    },
  });
  dockerAsCi = await dockerEnv(dockerHost, await tempFolder('docker-ci-', work));
}, 120_000);

afterAll(async () => {
  await registry?.stop();
});

describe('the AWS CLI and docker against the ECR API', () => {
  const repo = 'app/web';
  let first = '';

  it('creates a repository with immutable tags off, as ECR shapes it', async () => {
    const out = await ecrOk<{ repository: Record<string, unknown> }>(['create-repository', '--repository-name', repo]);
    expect(out.repository).toMatchObject({
      repositoryName: repo,
      registryId: ACCOUNT,
      repositoryArn: `arn:aws:ecr:us-east-1:${ACCOUNT}:repository/${repo}`,
      repositoryUri: `${registry.host}/${repo}`,
      imageTagMutability: 'MUTABLE',
    });
    const again = await ecr(['create-repository', '--repository-name', repo]);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain('RepositoryAlreadyExistsException');
  });

  it('refuses anonymous pulls and a docker push to a repository that does not exist', async () => {
    const anonymous = await httpGet(`${registry.url}/v2/${repo}/tags/list`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers['www-authenticate']).toBe(`Basic realm="${registry.url}/",service="ecr.amazonaws.com"`);
    await login();
    await freshImage(`${registry.host}/nowhere/app:1`);
    const push = await docker(['push', `${registry.host}/nowhere/app:1`], true);
    expect(push.code).not.toBe(0);
    expect(said(push)).toContain(`The repository with name 'nowhere/app' does not exist in the registry with id '${ACCOUNT}'`);
  });

  it('logs docker in with get-login-password, pushes, pulls and describes the image', async () => {
    await login();
    await freshImage(`${registry.host}/${repo}:1.0`);
    const push = await docker(['push', `${registry.host}/${repo}:1.0`]);
    first = pushedDigest(push);
    await docker(['rmi', `${registry.host}/${repo}:1.0`]);
    await docker(['pull', `${registry.host}/${repo}:1.0`]);

    const listed = await ecrOk<{ imageIds: Array<{ imageDigest: string; imageTag?: string }> }>(['list-images', '--repository-name', repo]);
    expect(listed.imageIds).toEqual([{ imageDigest: first, imageTag: '1.0' }]);
    const [detail] = await describeImages(repo);
    expect(detail).toMatchObject({ imageDigest: first, imageTags: ['1.0'], imageManifestMediaType: 'application/vnd.docker.distribution.manifest.v2+json' });
    expect(detail!.imageSizeInBytes).toBeGreaterThan(0);
    expect(detail!.imagePushedAt).toBeTruthy();
  });

  it('refuses a re-push of an immutable tag with ECR\'s message, and accepts the same image again', async () => {
    await ecrOk(['put-image-tag-mutability', '--repository-name', repo, '--image-tag-mutability', 'IMMUTABLE']);
    const described = await ecrOk<{ repositories: Array<{ imageTagMutability: string }> }>(['describe-repositories', '--repository-names', repo]);
    expect(described.repositories[0]!.imageTagMutability).toBe('IMMUTABLE');

    const again = await docker(['push', `${registry.host}/${repo}:1.0`]);
    expect(pushedDigest(again)).toBe(first);
    await freshImage(`${registry.host}/${repo}:1.0`);
    const moved = await docker(['push', `${registry.host}/${repo}:1.0`], true);
    expect(moved.code).not.toBe(0);
    expect(said(moved)).toContain(
      `The image tag '1.0' already exists in the '${repo}' repository and cannot be overwritten because the tag is immutable.`,
    );
    expect((await describeImages(repo)).map((d) => d.imageDigest)).toEqual([first]);
  });

  it('pushes a multi-platform list to the immutable repository', async () => {
    const amd = `${registry.host}/${repo}:amd64`;
    const arm = `${registry.host}/${repo}:arm64`;
    await freshImage(amd);
    await freshImage(arm);
    await docker(['push', amd]);
    await docker(['push', arm]);
    const list = `${registry.host}/${repo}:multi`;
    await docker(['manifest', 'create', '--insecure', list, amd, arm]);
    await docker(['manifest', 'annotate', '--arch', 'arm64', list, arm]);
    const pushed = await docker(['manifest', 'push', '--insecure', list]);
    const digest = /sha256:[0-9a-f]{64}/.exec(pushed.stdout)?.[0];
    expect(digest, said(pushed)).toBeDefined();
    const [detail] = (await ecrOk<{ imageDetails: ImageDetail[] }>(['describe-images', '--repository-name', repo, '--image-ids', 'imageTag=multi'])).imageDetails;
    expect(detail).toMatchObject({ imageDigest: digest, imageTags: ['multi'], imageManifestMediaType: 'application/vnd.docker.distribution.manifest.list.v2+json' });
  });

  it('previews a lifecycle policy, runs it and expires exactly the previewed images', async () => {
    const lc = 'app/lifecycle';
    await ecrOk(['create-repository', '--repository-name', lc]);
    const digests: Record<string, string> = {};
    for (const tag of ['v1', 'v2', 'v3', 'tmp', 'tmp']) {
      // The second "tmp" leaves the first one untagged.
      await freshImage(`${registry.host}/${lc}:${tag}`);
      const push = await docker(['push', `${registry.host}/${lc}:${tag}`]);
      digests[tag === 'tmp' && digests.tmp ? 'tmp2' : tag] = pushedDigest(push);
    }
    const policy = {
      rules: [
        { rulePriority: 1, description: 'keep the two newest v tags', selection: { tagStatus: 'tagged', tagPrefixList: ['v'], countType: 'imageCountMoreThan', countNumber: 2 }, action: { type: 'expire' } },
        { rulePriority: 2, description: 'no untagged images', selection: { tagStatus: 'untagged', countType: 'imageCountMoreThan', countNumber: 1 }, action: { type: 'expire' } },
      ],
    };
    const policyFile = join(work, 'lifecycle.json');
    await writeFile(policyFile, JSON.stringify(policy));
    await ecrOk(['put-lifecycle-policy', '--repository-name', lc, '--lifecycle-policy-text', `file://${policyFile}`]);
    const stored = await ecrOk<{ lifecyclePolicyText: string }>(['get-lifecycle-policy', '--repository-name', lc]);
    expect(JSON.parse(stored.lifecyclePolicyText)).toEqual(policy);

    // tmp once more: the two earlier tmp images are now untagged.
    await freshImage(`${registry.host}/${lc}:tmp`);
    digests.tmp3 = pushedDigest(await docker(['push', `${registry.host}/${lc}:tmp`]));

    await ecrOk(['start-lifecycle-policy-preview', '--repository-name', lc]);
    const preview = await ecrOk<{ status: string; previewResults: Array<{ imageDigest: string; appliedRulePriority: number }>; summary: { expiringImageTotalCount: number } }>(
      ['get-lifecycle-policy-preview', '--repository-name', lc],
    );
    expect(preview.status).toBe('COMPLETE');
    const previewed = preview.previewResults.map((r) => r.imageDigest).sort();
    // v1 is the oldest of three v tags; of the untagged images (the first two tmp), the older goes.
    expect(previewed).toEqual([digests.v1, digests.tmp].sort());
    expect(preview.summary.expiringImageTotalCount).toBe(2);

    const ran = await run('node', [BUILT_CLI, 'lifecycle', 'run', registry.configPath], { timeoutMs: 60_000 });
    expect(ran.stderr).toContain('expired 2 images');
    const left = (await describeImages(lc)).map((d) => d.imageDigest).sort();
    expect(left).toEqual([digests.v2, digests.v3, digests.tmp2, digests.tmp3].sort());
    const gone = await docker(['pull', `${registry.host}/${lc}:v1`], true);
    expect(gone.code).not.toBe(0);
    await docker(['pull', `${registry.host}/${lc}:v3`]);
  });

  it('uploads a layer through the layer API, puts an image over it, and docker pulls it through /v2/', async () => {
    const layerRepo = 'app/layers';
    await login();
    await ecrOk(['create-repository', '--repository-name', layerRepo]);
    // A real image: a tar layer and its config, each sent through the layer API.
    const root = join(work, 'layer-root');
    await mkdir(join(root, 'etc'), { recursive: true });
    await writeFile(join(root, 'etc', 'layer-api.txt'), `pushed through ECR's layer API ${Date.now()}\n`.repeat(200));
    const tarFile = join(work, 'layer.tar');
    await run('tar', ['-C', root, '-cf', tarFile, '.'], { timeoutMs: 30_000 });
    const layer = await readFile(tarFile);
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [`sha256:${sha256(layer)}`] } }),
    );
    const layerDigest = await uploadThroughLayerApi(layerRepo, layer);
    const configDigest = await uploadThroughLayerApi(layerRepo, config);

    const check = await ecrOk<{ layers: Array<{ layerDigest: string; layerAvailability: string; layerSize: number }> }>(
      ['batch-check-layer-availability', '--repository-name', layerRepo, '--layer-digests', layerDigest],
    );
    expect(check.layers).toEqual([expect.objectContaining({ layerDigest, layerAvailability: 'AVAILABLE', layerSize: layer.length })]);

    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
    });
    const manifestFile = join(work, 'manifest.json');
    await writeFile(manifestFile, manifest);
    const put = await ecrOk<{ image: { imageId: { imageDigest: string; imageTag: string } } }>(
      ['put-image', '--repository-name', layerRepo, '--image-tag', 'api', '--image-manifest', `file://${manifestFile}`],
    );
    expect(put.image.imageId).toEqual({ imageDigest: `sha256:${sha256(manifest)}`, imageTag: 'api' });
    const pulled = await docker(['pull', `${registry.host}/${layerRepo}:api`]);
    expect(pulled.stdout).toContain(`sha256:${sha256(manifest)}`);

    const password = (await run(AWS, ['ecr', 'get-login-password', '--endpoint-url', registry.url], { env: awsEnv(), timeoutMs: 60_000 })).stdout.trim();
    const blob = await httpGet(`${registry.url}/v2/${layerRepo}/blobs/${layerDigest}`, { headers: { authorization: basic('AWS', password) } });
    expect(blob.status).toBe(200);
    const { downloadUrl } = await ecrOk<{ downloadUrl: string }>(['get-download-url-for-layer', '--repository-name', layerRepo, '--layer-digest', layerDigest]);
    const downloaded = await fetch(downloadUrl);
    expect(downloaded.status).toBe(200);
    expect(sha256(Buffer.from(await downloaded.arrayBuffer()))).toBe(sha256(layer));
  });

  it('refuses what the access rules refuse, bad signatures and unknown keys', async () => {
    const denied = await ecr(['create-repository', '--repository-name', 'reader/try'], READER);
    expect(denied.code).not.toBe(0);
    expect(denied.stderr).toContain('AccessDeniedException');
    expect((await ecr(['describe-repositories', '--repository-names', repo], READER)).code).toBe(0);
    const wrongSecret = await ecr(['describe-repositories'], { id: KEY.id, secret: 'not-the-right-secret-at-all' });
    expect(wrongSecret.stderr).toContain('InvalidSignatureException');
    const unknown = await ecr(['describe-repositories'], { id: 'AKIAOCIREGUNKNOWN001', secret: KEY.secret });
    expect(unknown.stderr).toContain('UnrecognizedClientException');
  });

  it('deletes a repository with images only with --force', async () => {
    const refused = await ecr(['delete-repository', '--repository-name', repo]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('RepositoryNotEmptyException');
    await ecrOk(['delete-repository', '--repository-name', repo, '--force']);
    const after = await ecr(['describe-repositories', '--repository-names', repo]);
    expect(after.stderr).toContain('RepositoryNotFoundException');
    const pull = await docker(['pull', `${registry.host}/${repo}:1.0`], true);
    expect(pull.code).not.toBe(0);
  });

  it('logged no server fault', async () => {
    expect(await serverFaults(registry.logFile)).toEqual([]);
    expect(await readFile(registry.logFile, 'utf8')).not.toContain(KEY.secret);
  });
});

/** InitiateLayerUpload, UploadLayerPart (the whole blob as one part), CompleteLayerUpload; returns the digest. */
async function uploadThroughLayerApi(repo: string, bytes: Buffer): Promise<string> {
  const digest = `sha256:${sha256(bytes)}`;
  const partFile = join(work, `part-${digest.slice(7, 19)}`);
  await writeFile(partFile, bytes);
  const { uploadId } = await ecrOk<{ uploadId: string }>(['initiate-layer-upload', '--repository-name', repo]);
  const part = await ecrOk<{ lastByteReceived: number }>([
    'upload-layer-part', '--repository-name', repo, '--upload-id', uploadId,
    '--part-first-byte', '0', '--part-last-byte', String(bytes.length - 1), '--layer-part-blob', `fileb://${partFile}`,
  ]);
  expect(part.lastByteReceived).toBe(bytes.length - 1);
  const done = await ecrOk<{ layerDigest: string }>(['complete-layer-upload', '--repository-name', repo, '--upload-id', uploadId, '--layer-digests', digest]);
  expect(done.layerDigest).toBe(digest);
  return digest;
}

/** `aws ecr get-login-password | docker login --username AWS --password-stdin <host>`, unchanged. */
async function login(): Promise<void> {
  const env = { ...awsEnv(), DOCKER_CONFIG: dockerAsCi.DOCKER_CONFIG, DOCKER_HOST: dockerAsCi.DOCKER_HOST };
  const script = `"${AWS}" ecr get-login-password --endpoint-url ${registry.url} | docker login --username AWS --password-stdin ${registry.host}`;
  const result = await run('bash', ['-o', 'pipefail', '-c', script], { env, timeoutMs: 60_000, allowFailure: true });
  expect(result.code, said(result)).toBe(0);
}
