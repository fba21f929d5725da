// The image and layer operations through the real @aws-sdk/client-ecr: what they answer
// round-trips through the SDK's JSON 1.1 parser (timestamps, blobs, exceptions and their members).
import { createHash } from 'node:crypto';
import {
  BatchDeleteImageCommand,
  BatchGetImageCommand,
  CompleteLayerUploadCommand,
  CreateRepositoryCommand,
  DescribeImagesCommand,
  InitiateLayerUploadCommand,
  InvalidLayerPartException,
  ListImagesCommand,
  PutImageCommand,
  UploadLayerPartCommand,
} from '@aws-sdk/client-ecr';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { failure, startEcrRegistry, type EcrTestRegistry } from './sdk-support.js';

const REPO = 'team/sdk';
const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

let reg: EcrTestRegistry;
beforeEach(async () => {
  reg = await startEcrRegistry();
});
afterEach(async () => {
  await reg.destroy();
});

async function uploadLayer(content: Buffer): Promise<string> {
  const ecr = reg.client('admin');
  const { uploadId } = await ecr.send(new InitiateLayerUploadCommand({ repositoryName: REPO }));
  const half = Math.floor(content.length / 2);
  await ecr.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 0, partLastByte: half - 1, layerPartBlob: content.subarray(0, half) }));
  const last = await ecr.send(
    new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: half, partLastByte: content.length - 1, layerPartBlob: content.subarray(half) }),
  );
  expect(last.lastByteReceived).toBe(content.length - 1);
  const done = await ecr.send(new CompleteLayerUploadCommand({ repositoryName: REPO, uploadId, layerDigests: [sha256(content)] }));
  return done.layerDigest!;
}

it('pushes an image through the layer API and PutImage, then lists, describes, gets and deletes it', async () => {
  const ecr = reg.client('admin');
  await ecr.send(new CreateRepositoryCommand({ repositoryName: REPO }));
  const layer = Buffer.from('a layer pushed through the ECR API '.repeat(40));
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const layerDigest = await uploadLayer(layer);
  const configDigest = await uploadLayer(config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: configDigest, size: config.length },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: layerDigest, size: layer.length }],
  });
  const before = Date.now();
  const put = await ecr.send(new PutImageCommand({ repositoryName: REPO, imageManifest: manifest, imageTag: 'v1' }));
  expect(put.image?.imageId).toEqual({ imageDigest: sha256(manifest), imageTag: 'v1' });

  const again = await failure(ecr.send(new PutImageCommand({ repositoryName: REPO, imageManifest: manifest, imageTag: 'v1' })));
  expect(again.name).toBe('ImageAlreadyExistsException');
  expect(again.status).toBe(400);

  const listed = await ecr.send(new ListImagesCommand({ repositoryName: REPO }));
  expect(listed.imageIds).toEqual([{ imageDigest: sha256(manifest), imageTag: 'v1' }]);

  const { imageDetails } = await ecr.send(new DescribeImagesCommand({ repositoryName: REPO }));
  expect(imageDetails).toHaveLength(1);
  const d = imageDetails![0]!;
  expect(d.imageSizeInBytes).toBe(layer.length);
  expect(d.imagePushedAt).toBeInstanceOf(Date);
  expect(d.imagePushedAt!.getTime()).toBeGreaterThanOrEqual(before - 1000);
  expect(d.imageManifestMediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
  expect(d.artifactMediaType).toBe('application/vnd.docker.container.image.v1+json');

  const got = await ecr.send(new BatchGetImageCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'v1' }, { imageTag: 'nope' }] }));
  expect(got.images?.[0]?.imageManifest).toBe(manifest);
  expect(got.failures).toEqual([{ imageId: { imageTag: 'nope' }, failureCode: 'ImageNotFound', failureReason: 'Requested image not found' }]);
  const pulled = (await ecr.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'v1' }] }))).imageDetails![0]!;
  expect(pulled.lastRecordedPullTime).toBeInstanceOf(Date);

  const deleted = await ecr.send(new BatchDeleteImageCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'v1' }] }));
  expect(deleted.imageIds).toEqual([{ imageDigest: sha256(manifest), imageTag: 'v1' }]);
  expect((await ecr.send(new ListImagesCommand({ repositoryName: REPO }))).imageIds).toEqual([]);
  const missing = await failure(ecr.send(new DescribeImagesCommand({ repositoryName: REPO, imageIds: [{ imageTag: 'v1' }] })));
  expect(missing.name).toBe('ImageNotFoundException');
});

it('answers InvalidLayerPartException with lastValidByteReceived for a part out of place', async () => {
  const ecr = reg.client('admin');
  await ecr.send(new CreateRepositoryCommand({ repositoryName: REPO }));
  const { uploadId } = await ecr.send(new InitiateLayerUploadCommand({ repositoryName: REPO }));
  await ecr.send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 0, partLastByte: 2, layerPartBlob: Buffer.from('abc') }));
  const err = await ecr
    .send(new UploadLayerPartCommand({ repositoryName: REPO, uploadId, partFirstByte: 10, partLastByte: 12, layerPartBlob: Buffer.from('xyz') }))
    .then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(InvalidLayerPartException);
  expect((err as InvalidLayerPartException).lastValidByteReceived).toBe(2);
  expect((err as InvalidLayerPartException).uploadId).toBe(uploadId);
});
