// The layer operations through the real @aws-sdk/client-ecr against a running registry:
// BatchCheckLayerAvailability, InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload and
// GetDownloadUrlForLayer, with their shapes and errors; a layer uploaded here is pulled through /v2/,
// and the download URL serves its bytes.
import {
  BatchCheckLayerAvailabilityCommand,
  CompleteLayerUploadCommand,
  CreateRepositoryCommand,
  GetDownloadUrlForLayerCommand,
  InitiateLayerUploadCommand,
  PutImageCommand,
  UploadLayerPartCommand,
  type ECRClient,
} from '@aws-sdk/client-ecr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testBytes } from '../support/socket.js';
import { OCI_CONFIG, OCI_MANIFEST, awsLogin, invalidAt, manifestOf, pushBlob, sha256, v2 } from './sdk-fixtures.js';
import { ACCOUNT, REGION, failure, startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

let registry: EcrTestRegistry;
let admin: ECRClient;
let dev: ECRClient;
let reader: ECRClient;
let auth: string;

const REPO = 'team/layers';
const OPS = 'ops/layers';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const NO_UPLOAD = '00000000-0000-4000-8000-000000000000';

beforeAll(async () => {
  registry = await startEcrRegistry();
  admin = registry.client('admin');
  dev = registry.client('dev');
  reader = registry.client('reader');
  auth = await awsLogin(registry);
  await admin.send(new CreateRepositoryCommand({ repositoryName: REPO }));
  await admin.send(new CreateRepositoryCommand({ repositoryName: OPS }));
});
afterAll(async () => {
  await registry?.destroy();
});

const notFound = (name: string) => `The repository with name '${name}' does not exist in the registry with id '${ACCOUNT}'`;
const denied = (user: string, operation: string, name: string) =>
  `User: arn:aws:iam::${ACCOUNT}:user/${user} is not authorized to perform: ecr:${operation} on resource: arn:aws:ecr:${REGION}:${ACCOUNT}:repository/${name} because no identity-based policy allows the ecr:${operation} action`;

/** Uploads `content` in parts of `partSize` bytes through the layer API; returns the upload id. */
async function upload(content: Buffer, partSize: number, client = admin, repo = REPO): Promise<string> {
  const { uploadId } = await client.send(new InitiateLayerUploadCommand({ repositoryName: repo }));
  for (let first = 0; first < content.length; first += partSize) {
    const last = Math.min(first + partSize, content.length) - 1;
    const out = await client.send(
      new UploadLayerPartCommand({ repositoryName: repo, uploadId, partFirstByte: first, partLastByte: last, layerPartBlob: content.subarray(first, last + 1) }),
    );
    expect(out).toMatchObject({ registryId: ACCOUNT, repositoryName: repo, uploadId, lastByteReceived: last });
  }
  return uploadId!;
}

/** Puts an image manifest over a layer (and a config pushed over /v2/), so that the layer belongs to an image. */
async function imageOver(layerDigest: string, size: number, tag: string): Promise<void> {
  const config = await pushBlob(registry, auth, REPO, JSON.stringify({ os: 'linux', architecture: 'amd64', tag }));
  const m = manifestOf({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: OCI_CONFIG, ...config }, layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size }] }, OCI_MANIFEST);
  await admin.send(new PutImageCommand({ repositoryName: REPO, imageManifest: m.text, imageTag: tag }));
}

describe('InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload', () => {
  it('uploads a layer in parts, completes it, and /v2/ serves the same bytes', async () => {
    const content = testBytes(300_000, 7);
    const initiated = await dev.send(new InitiateLayerUploadCommand({ repositoryName: REPO }));
    expect(initiated.uploadId).toMatch(UUID);
    expect(initiated.partSize).toBe(10 * 1024 * 1024);
    const uploadId = initiated.uploadId!;
    for (const [first, last] of [[0, 99_999], [100_000, 249_999], [250_000, 299_999]] as const) {
      const part = await dev.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: first, partLastByte: last, layerPartBlob: content.subarray(first, last + 1) }));
      expect(part).toMatchObject({ registryId: ACCOUNT, repositoryName: REPO, uploadId, lastByteReceived: last });
    }
    const done = await dev.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId, layerDigests: [sha256(content)] }));
    expect(done).toMatchObject({ registryId: ACCOUNT, repositoryName: REPO, uploadId, layerDigest: sha256(content) });
    const pulled = await v2(registry, auth, 'GET', `/v2/${REPO}/blobs/${sha256(content)}`);
    expect(pulled.status).toBe(200);
    expect(pulled.body.equals(content)).toBe(true);
    const check = await admin.send(new BatchCheckLayerAvailabilityCommand({ repositoryName: REPO, layerDigests: [sha256(content)] }));
    expect(check.layers).toEqual([{ layerDigest: sha256(content), layerAvailability: 'AVAILABLE', layerSize: content.length }]);
  });

  it('refuses a part that does not follow the bytes received, with lastValidByteReceived, and takes the right one after', async () => {
    const { uploadId } = await admin.send(new InitiateLayerUploadCommand({ repositoryName: REPO }));
    const before = await failure(admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 5, partLastByte: 9, layerPartBlob: Buffer.from('abcde') })));
    expect(before.name).toBe('InvalidLayerPartException');
    expect(before.error).toMatchObject({ registryId: ACCOUNT, repositoryName: REPO, uploadId, lastValidByteReceived: -1 });
    await admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 0, partLastByte: 4, layerPartBlob: Buffer.from('hello') }));
    const overlap = await failure(admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 2, partLastByte: 6, layerPartBlob: Buffer.from('xxxxx') })));
    expect(overlap.name).toBe('InvalidLayerPartException');
    expect(overlap.error.lastValidByteReceived).toBe(4);
    // A part whose range does not hold its bytes.
    const short = await failure(admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 5, partLastByte: 20, layerPartBlob: Buffer.from('world') })));
    expect(short.name).toBe('InvalidLayerPartException');
    expect(short.error.lastValidByteReceived).toBe(4);
    const ok = await admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 5, partLastByte: 9, layerPartBlob: Buffer.from('world') }));
    expect(ok.lastByteReceived).toBe(9);
    const done = await admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId, layerDigests: [sha256('helloworld')] }));
    expect(done.layerDigest).toBe(sha256('helloworld'));
  });

  it('refuses a part over 20 MiB with InvalidParameterException, and keeps the upload as it was', async () => {
    const { uploadId } = await admin.send(new InitiateLayerUploadCommand({ repositoryName: REPO }));
    await admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 0, partLastByte: 2, layerPartBlob: Buffer.from('abc') }));
    const big = Buffer.alloc(20 * 1024 * 1024 + 1, 0x61);
    const f = await failure(admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 3, partLastByte: 3 + big.length - 1, layerPartBlob: big })));
    expect(f.name).toBe('InvalidParameterException');
    expect(f.message).toBe(invalidAt('layerPartBlob', `Member must have length less than or equal to ${20 * 1024 * 1024}`));
    const next = await admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 3, partLastByte: 5, layerPartBlob: Buffer.from('def') }));
    expect(next.lastByteReceived).toBe(5);
  });

  it('answers InvalidLayerException when the bytes do not have the digest given, and keeps nothing', async () => {
    const uploadId = await upload(Buffer.from('the real bytes'), 100);
    const claimed = sha256('other bytes');
    const f = await failure(admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId, layerDigests: [claimed] })));
    expect(f.name).toBe('InvalidLayerException');
    expect(f.message).toBe(`The digest of the uploaded layer does not match the provided digest '${claimed}'`);
    const check = await admin.send(new BatchCheckLayerAvailabilityCommand({ repositoryName: REPO, layerDigests: [claimed, sha256('the real bytes')] }));
    expect(check.layers!.map((l) => l.layerAvailability)).toEqual(['UNAVAILABLE', 'UNAVAILABLE']);
  });

  it('answers EmptyUploadException for an upload without parts', async () => {
    const { uploadId } = await admin.send(new InitiateLayerUploadCommand({ repositoryName: REPO }));
    const f = await failure(admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId, layerDigests: [sha256('')] })));
    expect(f.name).toBe('EmptyUploadException');
    expect(f.message).toBe(`The upload with id '${uploadId}' in the repository with name '${REPO}' in the registry with id '${ACCOUNT}' has no layer parts`);
  });

  it('answers LayerAlreadyExistsException for a layer the repository has', async () => {
    const content = Buffer.from('a layer uploaded twice');
    await admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId: await upload(content, 8), layerDigests: [sha256(content)] }));
    const second = await upload(content, 100);
    const f = await failure(admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId: second, layerDigests: [sha256(content)] })));
    expect(f.name).toBe('LayerAlreadyExistsException');
    expect(f.message).toBe(`The layer with digest '${sha256(content)}' already exists in the repository with name '${REPO}' in the registry with id '${ACCOUNT}'`);
  });

  it('answers UploadNotFoundException for an upload it does not have, in UploadLayerPart and CompleteLayerUpload', async () => {
    const message = `The upload with id '${NO_UPLOAD}' does not exist in the repository with name '${REPO}' in the registry with id '${ACCOUNT}'`;
    const part = await failure(admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId: NO_UPLOAD, partFirstByte: 0, partLastByte: 2, layerPartBlob: Buffer.from('abc') })));
    expect(part.name).toBe('UploadNotFoundException');
    expect(part.message).toBe(message);
    const done = await failure(admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId: NO_UPLOAD, layerDigests: [sha256('abc')] })));
    expect(done.name).toBe('UploadNotFoundException');
    expect(done.message).toBe(message);
    // An upload of another repository is not this one's.
    const { uploadId } = await admin.send(new InitiateLayerUploadCommand({ repositoryName: OPS }));
    const elsewhere = await failure(admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 0, partLastByte: 2, layerPartBlob: Buffer.from('abc') })));
    expect(elsewhere.name).toBe('UploadNotFoundException');
  });

  it('refuses what the model refuses: a malformed upload id, a negative position, several digests, a malformed digest', async () => {
    const bad = await failure(admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId: 'not-an-id', partFirstByte: 0, partLastByte: 0, layerPartBlob: Buffer.from('a') })));
    // The layer operations' models list no ValidationException: ECR answers InvalidParameterException.
    expect(bad.name).toBe('InvalidParameterException');
    expect(bad.message.startsWith("Invalid parameter at 'uploadId' failed to satisfy constraint: 'Member must satisfy regular expression pattern: ")).toBe(true);
    const negative = await failure(admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId: NO_UPLOAD, partFirstByte: -1, partLastByte: 0, layerPartBlob: Buffer.from('a') })));
    expect(negative.name).toBe('InvalidParameterException');
    expect(negative.message).toBe(invalidAt('partFirstByte', 'Member must have value greater than or equal to 0'));
    const missing = await failure(admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId: NO_UPLOAD } as never)));
    expect(missing.name).toBe('InvalidParameterException');
    expect(missing.message).toBe(invalidAt('partFirstByte', 'Member must not be null'));
    const { uploadId } = await admin.send(new InitiateLayerUploadCommand({ repositoryName: REPO }));
    await admin.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 0, partLastByte: 1, layerPartBlob: Buffer.from('ab') }));
    const two = await failure(admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId, layerDigests: [sha256('ab'), sha256('cd')] })));
    expect(two.name).toBe('InvalidParameterException');
    const malformed = await failure(admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId, layerDigests: ['sha256:xyz'] })));
    expect(malformed.name).toBe('InvalidParameterException');
    expect(malformed.message).toContain("Invalid parameter at 'layerDigests.1.member'");
    const none = await failure(admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId, layerDigests: [] })));
    expect(none.name).toBe('InvalidParameterException');
    expect(none.message).toBe(invalidAt('layerDigests', 'Member must have length greater than or equal to 1'));
    // The upload is still usable after all that.
    expect((await admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId, layerDigests: [sha256('ab')] }))).layerDigest).toBe(sha256('ab'));
  });

  it('answers RepositoryNotFoundException for each, and refuses the reader and the dev key outside team/', async () => {
    const f = await failure(admin.send(new InitiateLayerUploadCommand({ repositoryName: 'team/no-layers' })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/no-layers'));
    const part = await failure(admin.send(new UploadLayerPartCommand({ repositoryName: 'team/no-layers', uploadId: NO_UPLOAD, partFirstByte: 0, partLastByte: 0, layerPartBlob: Buffer.from('a') })));
    expect(part.name).toBe('RepositoryNotFoundException');
    const done = await failure(admin.send(new CompleteLayerUploadCommand({ repositoryName: 'team/no-layers', uploadId: NO_UPLOAD, layerDigests: [sha256('a')] })));
    expect(done.name).toBe('RepositoryNotFoundException');

    const r = await failure(reader.send(new InitiateLayerUploadCommand({ repositoryName: REPO })));
    expect(r.name).toBe('AccessDeniedException');
    expect(r.message).toBe(denied('reader', 'InitiateLayerUpload', REPO));
    const d = await failure(dev.send(new InitiateLayerUploadCommand({ repositoryName: OPS })));
    expect(d.name).toBe('AccessDeniedException');
    expect(d.message).toBe(denied('dev', 'InitiateLayerUpload', OPS));
    // An upload the admin opened in ops/ cannot be fed or completed by the dev key.
    const { uploadId } = await admin.send(new InitiateLayerUploadCommand({ repositoryName: OPS }));
    const dp = await failure(dev.send(new UploadLayerPartCommand({ repositoryName: OPS, uploadId, partFirstByte: 0, partLastByte: 0, layerPartBlob: Buffer.from('a') })));
    expect(dp.name).toBe('AccessDeniedException');
    const rc = await failure(reader.send(new CompleteLayerUploadCommand({ repositoryName: OPS, uploadId, layerDigests: [sha256('a')] })));
    expect(rc.name).toBe('AccessDeniedException');
    expect(rc.message).toBe(denied('reader', 'CompleteLayerUpload', OPS));
  });
});

describe('BatchCheckLayerAvailability', () => {
  it('answers each digest as available (with its size) or not, and malformed ones as failures', async () => {
    const content = Buffer.from('a layer to check');
    await admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId: await upload(content, 100), layerDigests: [sha256(content)] }));
    const missing = sha256('never uploaded');
    const out = await reader.send(new BatchCheckLayerAvailabilityCommand({ repositoryName: REPO, layerDigests: [sha256(content), missing, 'garbage', ''] }));
    expect(out.layers).toEqual([
      { layerDigest: sha256(content), layerAvailability: 'AVAILABLE', layerSize: content.length },
      { layerDigest: missing, layerAvailability: 'UNAVAILABLE' },
    ]);
    expect(out.failures).toEqual([
      { layerDigest: 'garbage', failureCode: 'InvalidLayerDigest', failureReason: "Invalid layer digest: 'garbage'" },
      { layerDigest: '', failureCode: 'MissingLayerDigest', failureReason: 'The layer digest is missing' },
    ]);
    // A layer of another repository is not available in this one.
    const there = await admin.send(new BatchCheckLayerAvailabilityCommand({ repositoryName: OPS, layerDigests: [sha256(content)] }));
    expect(there.layers).toEqual([{ layerDigest: sha256(content), layerAvailability: 'UNAVAILABLE' }]);
  });

  it('refuses no digests and more than 100, and answers RepositoryNotFoundException', async () => {
    const none = await failure(admin.send(new BatchCheckLayerAvailabilityCommand({ repositoryName: REPO, layerDigests: [] })));
    expect(none.name).toBe('InvalidParameterException');
    expect(none.message).toBe(invalidAt('layerDigests', 'Member must have length greater than or equal to 1'));
    const many = await failure(admin.send(new BatchCheckLayerAvailabilityCommand({ repositoryName: REPO, layerDigests: Array.from({ length: 101 }, (_, i) => sha256(`${i}`)) })));
    expect(many.name).toBe('InvalidParameterException');
    expect(many.message).toBe(invalidAt('layerDigests', 'Member must have length less than or equal to 100'));
    const f = await failure(admin.send(new BatchCheckLayerAvailabilityCommand({ repositoryName: 'team/no-layers', layerDigests: [sha256('x')] })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/no-layers'));
  });
});

describe('GetDownloadUrlForLayer', () => {
  let content: Buffer;
  beforeAll(async () => {
    content = testBytes(50_000, 11);
    await admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId: await upload(content, 20_000), layerDigests: [sha256(content)] }));
    await imageOver(sha256(content), content.length, 'download');
  });

  it('gives a URL of the registry that serves the layer without other credentials, Range too', async () => {
    const out = await reader.send(new GetDownloadUrlForLayerCommand({ repositoryName: REPO, layerDigest: sha256(content) }));
    expect(out.layerDigest).toBe(sha256(content));
    const url = new URL(out.downloadUrl!);
    expect(url.origin).toBe(registry.url);
    expect(url.searchParams.get('token')).toBeTruthy();
    const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(sha256(content));
    expect(res.headers.get('content-length')).toBe(String(content.length));
    expect(Buffer.from(await res.arrayBuffer()).equals(content)).toBe(true);
    const part = await fetch(url, { headers: { range: 'bytes=100-199' }, signal: AbortSignal.timeout(30_000) });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-199/${content.length}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(content.subarray(100, 200))).toBe(true);
  });

  it('refuses a URL whose token was changed, or used for another layer or repository', async () => {
    const out = await admin.send(new GetDownloadUrlForLayerCommand({ repositoryName: REPO, layerDigest: sha256(content) }));
    const url = new URL(out.downloadUrl!);
    const token = url.searchParams.get('token')!;
    const tampered = new URL(url);
    tampered.searchParams.set('token', `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`);
    expect((await fetch(tampered)).status).toBe(403);
    const otherLayer = new URL(`${registry.url}/ecr/download/${REPO}/${sha256('x')}`);
    otherLayer.searchParams.set('token', token);
    expect((await fetch(otherLayer)).status).toBe(403);
    const otherRepo = new URL(`${registry.url}/ecr/download/${OPS}/${sha256(content)}`);
    otherRepo.searchParams.set('token', token);
    expect((await fetch(otherRepo)).status).toBe(403);
    const none = new URL(url);
    none.search = '';
    expect((await fetch(none)).status).toBe(403);
  });

  it('answers LayersNotFoundException for a layer the repository lacks, LayerInaccessibleException for one in no image', async () => {
    const missing = sha256('no such layer');
    const f = await failure(admin.send(new GetDownloadUrlForLayerCommand({ repositoryName: REPO, layerDigest: missing })));
    expect(f.name).toBe('LayersNotFoundException');
    expect(f.message).toBe(`The layer with digest '${missing}' does not exist in the repository with name '${REPO}' in the registry with id '${ACCOUNT}'`);
    const loose = Buffer.from('uploaded, in no manifest');
    await admin.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId: await upload(loose, 100), layerDigests: [sha256(loose)] }));
    const g = await failure(admin.send(new GetDownloadUrlForLayerCommand({ repositoryName: REPO, layerDigest: sha256(loose) })));
    expect(g.name).toBe('LayerInaccessibleException');
    expect(g.message).toBe(`The layer with digest '${sha256(loose)}' is not associated with an image in the repository with name '${REPO}'`);
  });

  it('refuses a malformed digest, answers RepositoryNotFoundException, and refuses a caller without pull', async () => {
    const bad = await failure(admin.send(new GetDownloadUrlForLayerCommand({ repositoryName: REPO, layerDigest: 'not a digest' })));
    expect(bad.name).toBe('InvalidParameterException');
    expect(bad.message.startsWith("Invalid parameter at 'layerDigest' failed to satisfy constraint: 'Member must satisfy regular expression pattern: ")).toBe(true);
    const f = await failure(admin.send(new GetDownloadUrlForLayerCommand({ repositoryName: 'team/no-layers', layerDigest: sha256(content) })));
    expect(f.name).toBe('RepositoryNotFoundException');
    expect(f.message).toBe(notFound('team/no-layers'));

    const limited = await startEcrRegistry({ access: { admins: ['admin'], repositories: { 'team/**': { users: { reader: ['pull'] } } } } });
    try {
      await limited.client('admin').send(new CreateRepositoryCommand({ repositoryName: 'ops/private' }));
      const d = await failure(limited.client('reader').send(new GetDownloadUrlForLayerCommand({ repositoryName: 'ops/private', layerDigest: sha256(content) })));
      expect(d.name).toBe('AccessDeniedException');
      expect(d.message).toBe(denied('reader', 'GetDownloadUrlForLayer', 'ops/private'));
      const c = await failure(limited.client('reader').send(new BatchCheckLayerAvailabilityCommand({ repositoryName: 'ops/private', layerDigests: [sha256(content)] })));
      expect(c.name).toBe('AccessDeniedException');
    } finally {
      await limited.destroy();
    }
  });
});
