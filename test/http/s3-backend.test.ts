import { randomBytes, randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig, type Config } from '../../src/config/config.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { openSqliteIndex } from '../../src/index/sqlite/index.js';
import { reindex } from '../../src/registry/reindex.js';
import { openStore } from '../../src/storage/open-store.js';
import { S3BlobStore } from '../../src/storage/s3-blob-store.js';
import { digestOf, errorCode, makeImage, putManifest, tempDir } from '../helpers.js';
import { startFaultProxy, type FaultProxy, type ProxiedRequest } from '../support/fault-proxy.js';
import { listKeys, startS3Server, type S3Server } from '../support/s3.js';

const MiB = 1024 * 1024;
const REPO = 'team/app';

let server: S3Server;
beforeAll(async () => {
  server = await startS3Server();
});
afterAll(async () => {
  await server?.stop();
});

const isUploadPart = (r: ProxiedRequest) => r.method === 'PUT' && r.query.has('partNumber');

describe('the registry on the S3 backend', () => {
  let proxy: FaultProxy;
  let dir: string;
  let root: string;
  let app: FastifyInstance;
  let config: Config;

  async function start(extra: ConfigFile = {}): Promise<Config> {
    config = loadConfig({
      env: {},
      overrides: {
        ...extra,
        storage: {
          s3: {
            bucket: server.bucket,
            region: server.region,
            regionendpoint: proxy.url,
            accesskey: server.accessKey,
            secretkey: server.secretKey,
            forcepathstyle: true,
            rootdirectory: `/${root}`,
            chunksize: 5 * MiB,
          },
          maintenance: { uploadpurging: { enabled: false } },
          ...extra.storage,
        },
        index: { path: join(dir, 'index.db') },
      },
    });
    app = await buildApp(config, { logger: false });
    await app.ready();
    return config;
  }

  beforeEach(async () => {
    proxy = await startFaultProxy(server.endpoint);
    dir = await tempDir('ocireg-s3-http-');
    root = `http/${randomUUID()}`;
  });
  afterEach(async () => {
    await app?.close();
    await proxy.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function startUpload(): Promise<string> {
    const res = await app.inject({ method: 'POST', url: `/v2/${REPO}/blobs/uploads/` });
    expect(res.statusCode).toBe(202);
    return res.headers.location as string;
  }

  async function patch(location: string, data: Buffer, start: number) {
    return app.inject({
      method: 'PATCH',
      url: location,
      headers: {
        'content-type': 'application/octet-stream',
        'content-range': `${start}-${start + data.length - 1}`,
      },
      payload: data,
    });
  }

  it('takes a chunked push in odd chunk sizes, serves it whole and by range, and keeps only the blob in the bucket', async () => {
    await start({ storage: { redirect: { disable: true } } });
    const data = randomBytes(12 * MiB + 321);
    let location = await startUpload();
    let offset = 0;
    for (const size of [3 * MiB + 7, 10, 4 * MiB, 6 * MiB]) {
      const chunk = data.subarray(offset, Math.min(offset + size, data.length));
      const res = await patch(location, chunk, offset);
      expect(res.statusCode).toBe(202);
      offset += chunk.length;
      expect(res.headers.range).toBe(`0-${offset - 1}`);
      location = res.headers.location as string;
    }
    const digest = digestOf(data);
    const put = await app.inject({ method: 'PUT', url: `${location}?digest=${digest}` });
    expect(put.statusCode).toBe(201);

    const got = await app.inject({ method: 'GET', url: `/v2/${REPO}/blobs/${digest}` });
    expect(got.statusCode).toBe(200);
    expect(got.rawPayload.equals(data)).toBe(true);
    const ranged = await app.inject({ method: 'GET', url: `/v2/${REPO}/blobs/${digest}`, headers: { range: 'bytes=5242878-5242881' } });
    expect(ranged.statusCode).toBe(206);
    expect(ranged.rawPayload.equals(data.subarray(5242878, 5242882))).toBe(true);

    const keys = await listKeys(server, `${root}/`);
    expect(keys.filter((k) => k.includes('/uploads/'))).toEqual([]);
    expect(keys.filter((k) => k.includes('/blobs/'))).toEqual([`${root}/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`]);
  });

  it('reads an upload\'s state from the bucket once per PATCH', async () => {
    await start();
    const location = await startUpload();
    proxy.clear();
    expect((await patch(location, randomBytes(1000), 0)).statusCode).toBe(202);
    const noRange = await app.inject({ method: 'PATCH', url: location, headers: { 'content-type': 'application/octet-stream' }, payload: randomBytes(10) });
    expect(noRange.statusCode).toBe(202);
    expect(noRange.headers.range).toBe('0-1009');
    const stateReads = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/state.json'));
    expect(stateReads).toHaveLength(2);
  });

  it('refuses a wrong digest and shows no blob for it', async () => {
    await start();
    const location = await startUpload();
    const data = randomBytes(6 * MiB);
    expect((await patch(location, data, 0)).statusCode).toBe(202);
    const wrong = digestOf('something else');
    const put = await app.inject({ method: 'PUT', url: `${location}?digest=${wrong}` });
    expect(put.statusCode).toBe(400);
    expect(errorCode(put)).toBe('DIGEST_INVALID');
    const keys = await listKeys(server, `${root}/`);
    expect(keys).toEqual([]);
  });

  it('redirects blob GETs to a presigned URL that serves the bytes, but not HEAD or a fresh If-None-Match', async () => {
    await start();
    expect(config.storage.redirect).toBe(true);
    const data = Buffer.from('layer bytes served by the bucket');
    const digest = digestOf(data);
    const post = await app.inject({
      method: 'POST',
      url: `/v2/${REPO}/blobs/uploads/?digest=${digest}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: data,
    });
    expect(post.statusCode).toBe(201);

    const get = await app.inject({ method: 'GET', url: `/v2/${REPO}/blobs/${digest}` });
    expect(get.statusCode).toBe(307);
    expect(get.headers['docker-content-digest']).toBe(digest);
    expect(get.headers['cache-control']).toBe('no-store');
    const location = get.headers.location as string;
    expect(location.startsWith(`${proxy.url}/${server.bucket}/${root}/blobs/`)).toBe(true);
    const direct = await fetch(location);
    expect(Buffer.from(await direct.arrayBuffer()).equals(data)).toBe(true);

    const head = await app.inject({ method: 'HEAD', url: `/v2/${REPO}/blobs/${digest}` });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(String(data.length));
    const cached = await app.inject({ method: 'GET', url: `/v2/${REPO}/blobs/${digest}`, headers: { 'if-none-match': `"${digest}"` } });
    expect(cached.statusCode).toBe(304);
    const unknown = await app.inject({ method: 'GET', url: `/v2/${REPO}/blobs/${digestOf('nothing')}` });
    expect(unknown.statusCode).toBe(404);
    expect(errorCode(unknown)).toBe('BLOB_UNKNOWN');
  });

  it('answers 429 while S3 throttles and 503 while it fails, and the upload goes on afterwards', async () => {
    await start();
    const location = await startUpload();
    const data = randomBytes(11 * MiB);
    expect((await patch(location, data.subarray(0, 6 * MiB), 0)).statusCode).toBe(202);

    proxy.inject({ match: isUploadPart, fault: { kind: 'status', status: 503, code: 'SlowDown' } });
    const throttled = await patch(location, data.subarray(6 * MiB), 6 * MiB);
    expect(throttled.statusCode).toBe(429);
    expect(errorCode(throttled)).toBe('TOOMANYREQUESTS');
    expect(throttled.headers['retry-after']).toBe('5');

    proxy.clear();
    proxy.inject({ match: (r) => r.method === 'GET' && r.path.endsWith('/state.json'), fault: { kind: 'status', status: 500, code: 'InternalError' } });
    const failing = await app.inject({ method: 'GET', url: location });
    expect(failing.statusCode).toBe(503);
    expect(errorCode(failing)).toBe('UNAVAILABLE');

    proxy.clear();
    const status = await app.inject({ method: 'GET', url: location });
    expect(status.statusCode).toBe(204);
    expect(status.headers.range).toBe(`0-${6 * MiB - 1}`);
    expect((await patch(location, data.subarray(6 * MiB), 6 * MiB)).statusCode).toBe(202);
    const digest = digestOf(data);
    expect((await app.inject({ method: 'PUT', url: `${location}?digest=${digest}` })).statusCode).toBe(201);
    expect((await app.inject({ method: 'HEAD', url: `/v2/${REPO}/blobs/${digest}` })).statusCode).toBe(200);
  });

  it('reports itself unhealthy while S3 fails, and healthy again after', async () => {
    await start();
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    proxy.inject({ match: (r) => r.method === 'HEAD', fault: { kind: 'status', status: 500, code: 'InternalError' } });
    const down = await app.inject({ method: 'GET', url: '/healthz' });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toEqual({ status: 'unavailable' });
    proxy.clear();
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });

  it('is not ready while S3 fails, and counts the S3 client\'s retries in the metrics', async () => {
    await start({ http: { debug: { addr: '127.0.0.1:0', prometheus: { enabled: true } } } });
    expect((await app.inject({ method: 'GET', url: '/readyz' })).json()).toEqual({ status: 'ready', index: 'ok', store: 'ok' });
    // Two throttled answers to the readiness probe's HEAD: the SDK retries them and then succeeds.
    proxy.inject({ match: (r) => r.method === 'HEAD', fault: { kind: 'status', status: 503, code: 'SlowDown' }, times: 2 });
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    const metrics = (await app.debugServer!.inject({ method: 'GET', url: '/metrics' })).body;
    expect(metrics).toMatch(/^registry_storage_retries_total\{backend="s3",operation="HeadObject"\} 2$/m);
    // Failing for good: not ready, and which part failed is said.
    proxy.inject({ match: (r) => r.method === 'HEAD', fault: { kind: 'status', status: 500, code: 'InternalError' } });
    const down = await app.inject({ method: 'GET', url: '/readyz' });
    expect(down.statusCode).toBe(503);
    expect(down.json()).toEqual({ status: 'unavailable', index: 'ok', store: 'unreachable' });
    proxy.clear();
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
  });

  it('finishes an upload after a restart, recomputing the digest from the bucket', async () => {
    await start();
    const location = await startUpload();
    const data = randomBytes(7 * MiB + 3);
    expect((await patch(location, data.subarray(0, 5 * MiB + 1), 0)).statusCode).toBe(202);
    await app.close();

    await start();
    const status = await app.inject({ method: 'GET', url: location });
    expect(status.headers.range).toBe(`0-${5 * MiB}`);
    expect((await patch(location, data.subarray(5 * MiB + 1), 5 * MiB + 1)).statusCode).toBe(202);
    const wrong = await app.inject({ method: 'PUT', url: `${location}?digest=${digestOf('not it')}` });
    expect(errorCode(wrong)).toBe('DIGEST_INVALID');

    const again = await startUpload();
    expect((await patch(again, data.subarray(0, 5 * MiB + 1), 0)).statusCode).toBe(202);
    await app.close();
    await start();
    expect((await patch(again, data.subarray(5 * MiB + 1), 5 * MiB + 1)).statusCode).toBe(202);
    const digest = digestOf(data);
    expect((await app.inject({ method: 'PUT', url: `${again}?digest=${digest}` })).statusCode).toBe(201);
    const got = await app.inject({ method: 'GET', url: `/v2/${REPO}/blobs/${digest}`, headers: { range: `bytes=0-${data.length - 1}` } });
    expect(got.statusCode).toBe(307);
    expect(Buffer.from(await (await fetch(got.headers.location as string)).arrayBuffer()).equals(data)).toBe(true);
  });

  it('rebuilds the index from the bucket alone', async () => {
    await start();
    const image = await makeImage(app, REPO, { layer: 'reindexed' });
    expect((await putManifest(app, REPO, 'v1', image)).statusCode).toBe(201);
    const pending = await startUpload();
    await app.close();
    for (const suffix of ['', '-wal', '-shm']) await rm(join(dir, `index.db${suffix}`), { force: true });

    const store = await openStore(config);
    const index = openSqliteIndex(config.index.path);
    try {
      const report = await reindex(store, index.registry);
      expect(report).toMatchObject({ repositories: 1, manifests: 1, tags: 1, blobs: 3, uploads: 1, skipped: [] });
    } finally {
      await index.close();
      await store.close?.();
    }

    await start();
    const tags = await app.inject({ method: 'GET', url: `/v2/${REPO}/tags/list` });
    expect(tags.json()).toEqual({ name: REPO, tags: ['v1'] });
    const manifest = await app.inject({ method: 'GET', url: `/v2/${REPO}/manifests/v1`, headers: { accept: image.mediaType } });
    expect(manifest.rawPayload.equals(image.body)).toBe(true);
    expect((await app.inject({ method: 'GET', url: pending })).statusCode).toBe(204);
  });

  it('refuses an upload past the multipart part limit with 400 SIZE_INVALID, and keeps what fit', async () => {
    const config = await start();
    await app.close();
    const store = new S3BlobStore({
      bucket: server.bucket,
      region: server.region,
      endpoint: proxy.url,
      credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
      forcePathStyle: true,
      rootDirectory: root,
      chunkSize: 5 * MiB,
      maxParts: 2,
    });
    app = await buildApp(config, { logger: false, store });
    await app.ready();
    const location = await startUpload();
    const res = await patch(location, randomBytes(16 * MiB), 0);
    expect(res.statusCode).toBe(400);
    expect(errorCode(res)).toBe('SIZE_INVALID');
    const status = await app.inject({ method: 'GET', url: location });
    expect(status.headers.range).toBe(`0-${10 * MiB - 1}`);

    // A monolithic push past the limit: the same answer, and its temporary upload goes.
    const big = randomBytes(16 * MiB);
    const post = await app.inject({
      method: 'POST',
      url: `/v2/${REPO}/blobs/uploads/?digest=${digestOf(big)}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: big,
    });
    expect(post.statusCode).toBe(400);
    expect(errorCode(post)).toBe('SIZE_INVALID');
    await app.inject({ method: 'DELETE', url: location });
    expect(await listKeys(server, `${root}/`)).toEqual([]);
  });

  it('purges an expired upload and aborts its multipart upload', async () => {
    await start();
    const location = await startUpload();
    expect((await patch(location, randomBytes(5 * MiB), 0)).statusCode).toBe(202);
    const purged = await app.registry.uploads.purge(new Date(Date.now() + 60_000));
    expect(purged).toHaveLength(1);
    expect(proxy.requests.filter((r) => r.method === 'DELETE' && r.query.has('uploadId'))).toHaveLength(1);
    expect(await listKeys(server, `${root}/`)).toEqual([]);
    expect((await app.inject({ method: 'GET', url: location })).statusCode).toBe(404);
  });
});

describe('starting on S3', () => {
  it('fails with a clear error when the bucket does not exist', async () => {
    const dir = await tempDir('ocireg-s3-http-');
    try {
      const config = loadConfig({
        env: {},
        overrides: {
          storage: {
            s3: {
              bucket: 'missing-bucket',
              regionendpoint: server.endpoint,
              accesskey: server.accessKey,
              secretkey: server.secretKey,
              forcepathstyle: true,
            },
          },
          index: { path: join(dir, 'index.db') },
        },
      });
      await expect(buildApp(config, { logger: false })).rejects.toThrow('cannot open S3 bucket "missing-bucket": it does not exist');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
