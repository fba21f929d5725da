// The layer API over the registry's upload sessions: check, initiate, parts, complete, and the
// download URL. A layer pushed here is a blob of the repository, as a /v2/ push makes it.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { imageOperations } from '../../src/ecr/operations/images.js';
import { DOWNLOAD_URL_TTL_MS, MAX_PART, PART_SIZE, layerOperations as ops } from '../../src/ecr/operations/layers.js';
import { Digest } from '../../src/oci/digest.js';
import { ACCOUNT, KEY, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, digestOf, expectEcrError, openFixture, type Fixture } from './images-fixture.js';

const REPO = 'team/app';

let f: Fixture;
beforeEach(async () => {
  f = await openFixture();
  f.repositories.add(REPO);
});
afterEach(async () => {
  await f.close();
});

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

async function initiate(repo = REPO): Promise<string> {
  const out = await f.call(ops, 'InitiateLayerUpload', { repositoryName: repo });
  return out.uploadId as string;
}

function part(uploadId: string, first: number, data: string, last = first + Buffer.byteLength(data) - 1) {
  return f.call(ops, 'UploadLayerPart', { repositoryName: REPO, uploadId, partFirstByte: first, partLastByte: last, layerPartBlob: b64(data) });
}

describe('BatchCheckLayerAvailability', () => {
  it('says which layers the repository holds, with their size, and fails bad digests', async () => {
    const held = await f.pushBlob(REPO, 'held layer');
    f.repositories.add('team/other');
    const elsewhere = await f.pushBlob('team/other', 'only in another repository');
    const out = await f.call(ops, 'BatchCheckLayerAvailability', { repositoryName: REPO, layerDigests: [held, elsewhere, '', 'sha256:short'] });
    expect(out.layers).toEqual([
      { layerDigest: held, layerAvailability: 'AVAILABLE', layerSize: 'held layer'.length },
      { layerDigest: elsewhere, layerAvailability: 'UNAVAILABLE' },
    ]);
    expect(out.failures).toEqual([
      { layerDigest: '', failureCode: 'MissingLayerDigest', failureReason: expect.any(String) },
      { layerDigest: 'sha256:short', failureCode: 'InvalidLayerDigest', failureReason: expect.stringContaining('sha256:short') },
    ]);
  });

  it('validates the list and needs the pull right and the repository', async () => {
    await expectEcrError(f.call(ops, 'BatchCheckLayerAvailability', { repositoryName: REPO, layerDigests: [] }), 'ValidationException', /layerDigests/);
    await expectEcrError(f.call(ops, 'BatchCheckLayerAvailability', { repositoryName: REPO }), 'ValidationException', /must not be null/);
    const d = digestOf('x');
    await expectEcrError(f.call(ops, 'BatchCheckLayerAvailability', { repositoryName: 'team/none', layerDigests: [d] }), 'RepositoryNotFoundException');
    await expectEcrError(f.call(ops, 'BatchCheckLayerAvailability', { repositoryName: REPO, layerDigests: [d] }, { may: () => false }), 'AccessDeniedException');
  });
});

describe('a layer upload', () => {
  it('takes contiguous parts and completes into a blob of the repository, usable by PutImage', async () => {
    const init = await f.call(ops, 'InitiateLayerUpload', { repositoryName: REPO });
    expect(init.uploadId).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(init.partSize).toBe(PART_SIZE);
    const uploadId = init.uploadId as string;
    const content = 'first part|second part|third';
    expect(await part(uploadId, 0, 'first part|')).toEqual({ registryId: ACCOUNT, repositoryName: REPO, uploadId, lastByteReceived: 10 });
    expect((await part(uploadId, 11, 'second part|')).lastByteReceived).toBe(22);
    expect((await part(uploadId, 23, 'third')).lastByteReceived).toBe(content.length - 1);

    const layerDigest = digestOf(content);
    const done = await f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId, layerDigests: [layerDigest] });
    expect(done).toEqual({ registryId: ACCOUNT, repositoryName: REPO, uploadId, layerDigest });
    expect((await f.registry.blobs.stat(REPO, Digest.parse(layerDigest))).size).toBe(content.length);
    // The session is over.
    await expectEcrError(part(uploadId, content.length, 'more'), 'UploadNotFoundException');

    // The layer is the repository's, as a /v2/ push would make it: an image may use it.
    const config = await f.pushBlob(REPO, '{}');
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: config, size: 2 },
      layers: [{ mediaType: OCI_LAYER, digest: layerDigest, size: content.length }],
    });
    const put = await f.call(imageOperations, 'PutImage', { repositoryName: REPO, imageManifest: manifest, imageTag: 'v1' });
    expect(put.image.imageId.imageTag).toBe('v1');
  });

  it('refuses a part that does not continue the upload, saying where it stands', async () => {
    const uploadId = await initiate();
    const before = await expectEcrError(part(uploadId, 5, 'late'), 'InvalidLayerPartException', /byte 0/);
    expect(before.extra).toEqual({ registryId: ACCOUNT, repositoryName: REPO, uploadId, lastValidByteReceived: -1 });
    await part(uploadId, 0, 'abcd');
    const gap = await expectEcrError(part(uploadId, 6, 'gap'), 'InvalidLayerPartException');
    expect(gap.extra.lastValidByteReceived).toBe(3);
    const overlap = await expectEcrError(part(uploadId, 2, 'cdef'), 'InvalidLayerPartException');
    expect(overlap.extra.lastValidByteReceived).toBe(3);
    // A part whose range does not match its bytes.
    const short = await expectEcrError(part(uploadId, 4, 'efgh', 9), 'InvalidLayerPartException', /does not hold 4 bytes/);
    expect(short.extra.lastValidByteReceived).toBe(3);
    await expectEcrError(part(uploadId, 4, '', 4), 'InvalidLayerPartException');
    // What was refused left nothing: the upload goes on from byte 4.
    expect((await part(uploadId, 4, 'efgh')).lastByteReceived).toBe(7);
    const done = await f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId, layerDigests: [digestOf('abcdefgh')] });
    expect(done.layerDigest).toBe(digestOf('abcdefgh'));
  });

  it('answers UploadNotFoundException for an unknown upload or one of another repository', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    await expectEcrError(part(unknown, 0, 'x'), 'UploadNotFoundException', unknown);
    f.repositories.add('team/other');
    const theirs = await initiate('team/other');
    await expectEcrError(part(theirs, 0, 'x'), 'UploadNotFoundException');
    await expectEcrError(f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId: theirs, layerDigests: [digestOf('x')] }), 'UploadNotFoundException');
  });

  it('validates parts: the upload id pattern, base64, the 20 MiB limit', async () => {
    const uploadId = await initiate();
    await expectEcrError(
      f.call(ops, 'UploadLayerPart', { repositoryName: REPO, uploadId: 'nope', partFirstByte: 0, partLastByte: 0, layerPartBlob: b64('x') }),
      'ValidationException',
      /uploadId/,
    );
    await expectEcrError(
      f.call(ops, 'UploadLayerPart', { repositoryName: REPO, uploadId, partFirstByte: -1, partLastByte: 0, layerPartBlob: b64('x') }),
      'ValidationException',
      /partFirstByte/,
    );
    await expectEcrError(
      f.call(ops, 'UploadLayerPart', { repositoryName: REPO, uploadId, partFirstByte: 0, partLastByte: 2, layerPartBlob: 'no*base64' }),
      'SerializationException',
      /layerPartBlob/,
    );
    const tooBig = 'A'.repeat(Math.ceil(MAX_PART / 3) * 4 + 4);
    await expectEcrError(
      f.call(ops, 'UploadLayerPart', { repositoryName: REPO, uploadId, partFirstByte: 0, partLastByte: 1, layerPartBlob: tooBig }),
      'ValidationException',
      /layerPartBlob.*20971520/,
    );
    await expectEcrError(f.call(ops, 'UploadLayerPart', { repositoryName: REPO, uploadId, partFirstByte: 0, partLastByte: 0 }), 'ValidationException', /layerPartBlob/);
  });

  it('takes parts of the suggested size and of the largest, 10 and 20 MiB, in one upload', async () => {
    const uploadId = await initiate();
    const first = Buffer.alloc(PART_SIZE, 'a');
    const second = Buffer.alloc(MAX_PART, 'b');
    const one = await f.call(ops, 'UploadLayerPart', { repositoryName: REPO, uploadId, partFirstByte: 0, partLastByte: first.length - 1, layerPartBlob: b64(first) });
    expect(one.lastByteReceived).toBe(first.length - 1);
    const two = await f.call(ops, 'UploadLayerPart', {
      repositoryName: REPO, uploadId, partFirstByte: first.length, partLastByte: first.length + second.length - 1, layerPartBlob: b64(second),
    });
    expect(two.lastByteReceived).toBe(first.length + second.length - 1);
    const digest = digestOf(Buffer.concat([first, second]));
    const done = await f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId, layerDigests: [digest] });
    expect(done.layerDigest).toBe(digest);
  });

  it('refuses to complete with a wrong digest (InvalidLayerException, the upload ends), an empty upload, or two digests', async () => {
    const empty = await initiate();
    await expectEcrError(
      f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId: empty, layerDigests: [digestOf('')] }),
      'EmptyUploadException',
      empty,
    );
    const uploadId = await initiate();
    await part(uploadId, 0, 'content');
    await expectEcrError(
      f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId, layerDigests: [digestOf('a'), digestOf('b')] }),
      'InvalidParameterException',
      /exactly one/,
    );
    await expectEcrError(f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId, layerDigests: ['md5:abcd'] }), 'InvalidParameterException');
    await expectEcrError(f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId, layerDigests: ['nope'] }), 'ValidationException', /layerDigests/);
    await expectEcrError(
      f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId, layerDigests: [digestOf('other content')] }),
      'InvalidLayerException',
    );
    expect(await f.registry.index.linkedBlobSize(REPO, digestOf('other content'))).toBeUndefined();
    expect(await f.registry.index.linkedBlobSize(REPO, digestOf('content'))).toBeUndefined();
    await expectEcrError(f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId, layerDigests: [digestOf('content')] }), 'UploadNotFoundException');
  });

  it('answers LayerAlreadyExistsException for a layer the repository holds, and ends the upload', async () => {
    const held = await f.pushBlob(REPO, 'already here');
    const uploadId = await initiate();
    await part(uploadId, 0, 'already here');
    await expectEcrError(
      f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId, layerDigests: [held] }),
      'LayerAlreadyExistsException',
      held,
    );
    await expectEcrError(part(uploadId, 12, 'x'), 'UploadNotFoundException');
  });

  it('needs the push right and a repository ECR knows', async () => {
    await expectEcrError(f.call(ops, 'InitiateLayerUpload', { repositoryName: 'team/none' }), 'RepositoryNotFoundException');
    const noPush = { may: (_r: string, a: string) => a !== 'push' };
    await expectEcrError(f.call(ops, 'InitiateLayerUpload', { repositoryName: REPO }, noPush), 'AccessDeniedException');
    const uploadId = await initiate();
    await expectEcrError(part(uploadId, 0, 'x').then(() => f.call(ops, 'UploadLayerPart', {
      repositoryName: REPO, uploadId, partFirstByte: 1, partLastByte: 1, layerPartBlob: b64('y'),
    }, noPush)), 'AccessDeniedException');
    await expectEcrError(f.call(ops, 'CompleteLayerUpload', { repositoryName: REPO, uploadId, layerDigests: [digestOf('x')] }, noPush), 'AccessDeniedException');
  });
});

describe('GetDownloadUrlForLayer', () => {
  it('gives a short-lived signed URL of the registry for a layer of an image', async () => {
    const img = await f.pushImage(REPO, { tag: 'v1', layers: ['payload'] });
    const layerDigest = img.layerDigests[0]!;
    const before = Date.now();
    const out = await f.call(ops, 'GetDownloadUrlForLayer', { repositoryName: REPO, layerDigest });
    expect(out.layerDigest).toBe(layerDigest);
    const url = new URL(out.downloadUrl);
    expect(`${url.origin}${url.pathname}`).toBe(`http://registry.test:5000/ecr/download/${REPO}/${layerDigest}`);
    const token = url.searchParams.get('token')!;
    expect(f.credentials.verifyDownload(token, REPO, layerDigest)).toBe(true);
    expect(f.credentials.verifyDownload(token, REPO, img.configDigest)).toBe(false);
    expect(f.credentials.verifyDownload(token, 'team/other', layerDigest)).toBe(false);
    const expiry = Number(token.split('.')[1]);
    expect(expiry).toBeGreaterThanOrEqual(before + DOWNLOAD_URL_TTL_MS);
    expect(expiry).toBeLessThanOrEqual(Date.now() + DOWNLOAD_URL_TTL_MS);
    expect(token.startsWith(`${KEY.accessKeyId}.`)).toBe(true);
    // The config is a layer of the image too, as ECR counts them.
    await f.call(ops, 'GetDownloadUrlForLayer', { repositoryName: REPO, layerDigest: img.configDigest });
  });

  it('gives the store URL when redirects are on and the store has one', async () => {
    const img = await f.pushImage(REPO, { tag: 'v1' });
    const direct = vi.spyOn(f.registry.blobs, 'directUrl').mockResolvedValue('https://bucket.s3.example/blob?X-Amz-Signature=abc');
    const on = await f.call(ops, 'GetDownloadUrlForLayer', { repositoryName: REPO, layerDigest: img.layerDigests[0] }, { redirect: true });
    expect(on.downloadUrl).toBe('https://bucket.s3.example/blob?X-Amz-Signature=abc');
    const off = await f.call(ops, 'GetDownloadUrlForLayer', { repositoryName: REPO, layerDigest: img.layerDigests[0] });
    expect(off.downloadUrl).toMatch(/^http:\/\/registry\.test:5000\/ecr\/download\//);
    direct.mockResolvedValue(undefined);
    const none = await f.call(ops, 'GetDownloadUrlForLayer', { repositoryName: REPO, layerDigest: img.layerDigests[0] }, { redirect: true });
    expect(none.downloadUrl).toMatch(/^http:\/\/registry\.test:5000\/ecr\/download\//);
  });

  it('answers LayersNotFoundException outside the repository, LayerInaccessibleException for a layer of no image', async () => {
    f.repositories.add('team/other');
    const elsewhere = await f.pushBlob('team/other', 'elsewhere');
    await expectEcrError(f.call(ops, 'GetDownloadUrlForLayer', { repositoryName: REPO, layerDigest: elsewhere }), 'LayersNotFoundException', elsewhere);
    const loose = await f.pushBlob(REPO, 'uploaded, in no manifest');
    await expectEcrError(f.call(ops, 'GetDownloadUrlForLayer', { repositoryName: REPO, layerDigest: loose }), 'LayerInaccessibleException', loose);
    await expectEcrError(f.call(ops, 'GetDownloadUrlForLayer', { repositoryName: REPO, layerDigest: 'bad' }), 'ValidationException', /layerDigest/);
    await expectEcrError(f.call(ops, 'GetDownloadUrlForLayer', { repositoryName: REPO, layerDigest: elsewhere }, { may: () => false }), 'AccessDeniedException');
  });
});
