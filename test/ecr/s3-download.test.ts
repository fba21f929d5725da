// GetDownloadUrlForLayer with the S3 driver: a presigned bucket URL when redirects are on (the
// default), the registry's own signed URL when storage.redirect.disable is set. Real SDK, s3rver.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CompleteLayerUploadCommand,
  CreateRepositoryCommand,
  ECRClient,
  GetDownloadUrlForLayerCommand,
  InitiateLayerUploadCommand,
  PutImageCommand,
  UploadLayerPartCommand,
} from '@aws-sdk/client-ecr';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { registryS3Env, startS3Server, type S3Server } from '../support/s3.js';
import { listen } from '../support/socket.js';
import { ACCOUNT, KEYS, REGION } from './sdk-support.js';

let s3: S3Server;
let dir: string;
const apps: FastifyInstance[] = [];
const clients: ECRClient[] = [];

beforeAll(async () => {
  s3 = await startS3Server();
  dir = await mkdtemp(join(tmpdir(), 'ocireg-ecr-s3-'));
});
afterAll(async () => {
  for (const c of clients) c.destroy();
  for (const app of apps) await app.close();
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function start(name: string, redirect: boolean): Promise<{ url: string; client: ECRClient }> {
  const config = loadConfig({
    env: registryS3Env(s3, join(dir, `${name}.db`), `/${name}`),
    overrides: {
      ...(redirect ? {} : { storage: { redirect: { disable: true } } }),
      ecr: {
        enabled: true,
        accountid: ACCOUNT,
        region: REGION,
        credentials: [{ accesskeyid: KEYS.admin.accessKeyId, secretaccesskey: KEYS.admin.secretAccessKey, user: 'admin' }],
      },
    },
  });
  const app = await buildApp(config, { logger: false });
  apps.push(app);
  const url = await listen(app);
  const client = new ECRClient({ endpoint: url, region: REGION, credentials: KEYS.admin, maxAttempts: 1 });
  clients.push(client);
  return { url, client };
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An image whose config and layer went through the layer API; returns the layer and its digest. */
async function pushThroughLayerApi(client: ECRClient, repo: string): Promise<{ layer: Buffer; digest: string }> {
  await client.send(new CreateRepositoryCommand({ repositoryName: repo }));
  const upload = async (bytes: Buffer) => {
    const { uploadId } = await client.send(new InitiateLayerUploadCommand({ repositoryName: repo }));
    await client.send(new UploadLayerPartCommand({ repositoryName: repo, uploadId, partFirstByte: 0, partLastByte: bytes.length - 1, layerPartBlob: bytes }));
    await client.send(new CompleteLayerUploadCommand({ repositoryName: repo, uploadId, layerDigests: [sha(bytes)] }));
    return sha(bytes);
  };
  const layer = Buffer.from(`layer bytes in the bucket ${Math.random()}\n`.repeat(100));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layerDigest = await upload(layer);
  const configDigest = await upload(config);
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layerDigest, size: layer.length }],
  });
  await client.send(new PutImageCommand({ repositoryName: repo, imageManifest: manifest, imageTag: 'v1' }));
  return { layer, digest: layerDigest };
}

describe('GetDownloadUrlForLayer on S3', () => {
  it('answers a presigned URL of the bucket that serves the layer', async () => {
    const { client } = await start('redirect', true);
    const { layer, digest } = await pushThroughLayerApi(client, 'team/app');
    const { downloadUrl } = await client.send(new GetDownloadUrlForLayerCommand({ repositoryName: 'team/app', layerDigest: digest }));
    expect(downloadUrl!.startsWith(s3.endpoint)).toBe(true);
    expect(downloadUrl).toContain('X-Amz-Signature=');
    const res = await fetch(downloadUrl!);
    expect(res.status).toBe(200);
    expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(sha(layer));
  });

  it('answers the registry\'s own signed URL when redirects are disabled', async () => {
    const { url, client } = await start('direct', false);
    const { layer, digest } = await pushThroughLayerApi(client, 'team/app');
    const { downloadUrl } = await client.send(new GetDownloadUrlForLayerCommand({ repositoryName: 'team/app', layerDigest: digest }));
    expect(downloadUrl!.startsWith(`${url}/ecr/download/team/app/${digest}?token=`)).toBe(true);
    const res = await fetch(downloadUrl!);
    expect(res.status).toBe(200);
    expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(sha(layer));
    const forged = await fetch(downloadUrl!.replace(/token=[^&]+/, 'token=ecr1.x.1.y'));
    expect(forged.status).toBe(403);
  });
});
