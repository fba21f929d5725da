import { createHash, randomBytes } from 'node:crypto';
import { access, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFaultProxy, type FaultProxy, type ProxiedRequest } from './fault-proxy.js';
import { listKeys, s3Client, startS3Server, type S3Server } from './s3.js';

const MiB = 1024 * 1024;

let server: S3Server;
let client: S3Client;

beforeAll(async () => {
  server = await startS3Server();
  client = s3Client(server);
});

afterAll(async () => {
  client?.destroy();
  await server?.stop();
});

function sha256(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

async function getBytes(c: S3Client, key: string): Promise<Buffer> {
  const res = await c.send(new GetObjectCommand({ Bucket: server.bucket, Key: key }));
  return Buffer.from(await res.Body!.transformToByteArray());
}

/** Reads a body to its end or its first error; returns what arrived and whether it failed. */
async function readAll(body: Readable): Promise<{ bytes: number; failed: boolean }> {
  let bytes = 0;
  try {
    for await (const chunk of body) bytes += (chunk as Buffer).length;
    return { bytes, failed: false };
  } catch {
    return { bytes, failed: true };
  }
}

const isPutOf = (key: string) => (r: ProxiedRequest) =>
  r.method === 'PUT' && r.path === `/${server.bucket}/${key}` && !r.query.has('uploadId');

describe('startS3Server', () => {
  it('stores and returns an object, and lists it', async () => {
    const data = randomBytes(1000);
    await client.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'plain/one', Body: data }));

    expect(await getBytes(client, 'plain/one')).toEqual(data);
    expect(await listKeys(server, 'plain/')).toEqual(['plain/one']);
    expect(await listKeys(server, 'nothing/')).toEqual([]);
  });

  it('completes a multipart upload of a 5 MiB part and a short last part', async () => {
    const key = 'multipart/blob';
    const parts = [randomBytes(5 * MiB), randomBytes(1234)];
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: server.bucket, Key: key }));
    const completed = [];
    for (const [index, body] of parts.entries()) {
      const { ETag } = await client.send(
        new UploadPartCommand({ Bucket: server.bucket, Key: key, UploadId, PartNumber: index + 1, Body: body }),
      );
      completed.push({ PartNumber: index + 1, ETag });
    }
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket: server.bucket, Key: key, UploadId, MultipartUpload: { Parts: completed } }),
    );

    const stored = await getBytes(client, key);
    expect(stored.length).toBe(5 * MiB + 1234);
    expect(sha256(stored)).toBe(sha256(Buffer.concat(parts)));
    expect(await listKeys(server, 'multipart/')).toEqual([key]);
  });

  it('pages through more keys than one listing returns', async () => {
    const keys = ['page/a', 'page/b', 'page/c', 'page/d', 'page/e'];
    await Promise.all(keys.map((Key) => client.send(new PutObjectCommand({ Bucket: server.bucket, Key, Body: 'x' }))));
    expect(await listKeys(server, 'page/', 2)).toEqual(keys);
  });

  it('stop() removes the folder it created, and leaves a given one', async () => {
    const own = await startS3Server({ bucket: 'own-folder' });
    await access(own.directory);
    await own.stop();
    await expect(access(own.directory)).rejects.toThrow();
    await own.stop(); // a second stop is harmless

    const given = await mkdtemp(join(tmpdir(), 'ocireg-s3-given-'));
    try {
      const other = await startS3Server({ directory: given });
      await other.stop();
      await access(given);
    } finally {
      await rm(given, { recursive: true, force: true });
    }
  });
});

describe('startFaultProxy', () => {
  let proxy: FaultProxy;

  beforeAll(async () => {
    proxy = await startFaultProxy(server.endpoint);
  });

  afterEach(() => {
    proxy.clear();
    proxy.requests.length = 0;
  });

  afterAll(async () => {
    await proxy?.close();
  });

  const viaProxy = (maxAttempts: number): S3Client => s3Client({ ...server, endpoint: proxy.url }, { maxAttempts });

  it('passes requests through with their Host header and records them', async () => {
    const c = viaProxy(1);
    try {
      const data = randomBytes(3 * MiB); // large enough for Expect: 100-continue
      await c.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'proxied/big', Body: data }));
      expect(sha256(await getBytes(c, 'proxied/big'))).toBe(sha256(data));

      const [put, get] = proxy.requests;
      expect(put).toMatchObject({ method: 'PUT', path: `/${server.bucket}/proxied/big` });
      expect(put!.headers.host).toBe(new URL(proxy.url).host);
      expect(put!.headers.expect).toBe('100-continue');
      expect(get).toMatchObject({ method: 'GET', path: `/${server.bucket}/proxied/big` });
      expect(get!.query.get('x-id')).toBe('GetObject');
    } finally {
      c.destroy();
    }
  });

  it("answers a 'status' fault with an S3 error the SDK retries", async () => {
    proxy.inject({ match: isPutOf('retried/put'), fault: { kind: 'status', status: 503, code: 'SlowDown' }, times: 1 });
    const c = viaProxy(3);
    try {
      const data = randomBytes(100);
      await c.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'retried/put', Body: data }));

      expect(proxy.requests.filter(isPutOf('retried/put'))).toHaveLength(2);
      expect(await getBytes(client, 'retried/put')).toEqual(data);
    } finally {
      c.destroy();
    }
  });

  it("answers a 'status' fault before a 100-continue body is sent", async () => {
    proxy.inject({ match: isPutOf('retried/big'), fault: { kind: 'status', status: 503, code: 'SlowDown' }, times: 1 });
    const c = viaProxy(3);
    try {
      const data = randomBytes(3 * MiB);
      await c.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'retried/big', Body: data }));

      expect(proxy.requests.filter(isPutOf('retried/big'))).toHaveLength(2);
      expect(sha256(await getBytes(client, 'retried/big'))).toBe(sha256(data));
    } finally {
      c.destroy();
    }
  });

  it("surfaces a 'status' fault as the S3 error when retries are used up", async () => {
    proxy.inject({ match: isPutOf('refused'), fault: { kind: 'status', status: 403, code: 'AccessDenied', message: 'no' } });
    const c = viaProxy(1);
    try {
      await expect(
        c.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'refused', Body: 'x' })),
      ).rejects.toMatchObject({ name: 'AccessDenied', message: 'no', $metadata: { httpStatusCode: 403 } });
      expect(await listKeys(server, 'refused')).toEqual([]);
    } finally {
      c.destroy();
    }
  });

  it("fails a request on a 'reset' fault", async () => {
    proxy.inject({ match: isPutOf('reset/put'), fault: { kind: 'reset' } });
    const c = viaProxy(1);
    try {
      await expect(
        c.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'reset/put', Body: randomBytes(1000) })),
      ).rejects.toThrow();
      expect(proxy.requests.filter(isPutOf('reset/put'))).toHaveLength(1);
      expect(await listKeys(server, 'reset/')).toEqual([]);
    } finally {
      c.destroy();
    }
  });

  it("cuts a GetObject body short on a 'cut' fault, once", async () => {
    const data = randomBytes(256 * 1024);
    await client.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'cut/blob', Body: data }));
    proxy.inject({ match: (r) => r.method === 'GET' && r.path.endsWith('/cut/blob'), fault: { kind: 'cut', afterBytes: 1000 }, times: 1 });
    const c = viaProxy(1);
    try {
      const res = await c.send(new GetObjectCommand({ Bucket: server.bucket, Key: 'cut/blob' }));
      expect(res.ContentLength).toBe(data.length);
      // Node reports the early close as an error on the body stream.
      expect(await readAll(res.Body as Readable)).toEqual({ bytes: 1000, failed: true });

      // The rule is used up: the next read is whole.
      expect(sha256(await getBytes(c, 'cut/blob'))).toBe(sha256(data));
    } finally {
      c.destroy();
    }
  });

  it("cuts right after the headers with afterBytes 0", async () => {
    await client.send(new PutObjectCommand({ Bucket: server.bucket, Key: 'cut/zero', Body: randomBytes(1000) }));
    proxy.inject({ match: (r) => r.method === 'GET' && r.path.endsWith('/cut/zero'), fault: { kind: 'cut', afterBytes: 0 } });
    const c = viaProxy(1);
    try {
      const res = await c.send(new GetObjectCommand({ Bucket: server.bucket, Key: 'cut/zero' }));
      expect(await readAll(res.Body as Readable)).toEqual({ bytes: 0, failed: true });
    } finally {
      c.destroy();
    }
  });

  it('answers 502 when the target is down', async () => {
    const down = await startS3Server({ bucket: 'gone-soon' });
    await down.stop();
    const deadProxy = await startFaultProxy(down.endpoint);
    const c = s3Client({ ...down, endpoint: deadProxy.url }, { maxAttempts: 1 });
    try {
      await expect(c.send(new GetObjectCommand({ Bucket: down.bucket, Key: 'x' }))).rejects.toMatchObject({
        $metadata: { httpStatusCode: 502 },
      });
    } finally {
      c.destroy();
      await deadProxy.close();
    }
  });
});
