import { readFile, rm, writeFile, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { FsBlobStore } from '../../src/storage/fs-blob-store.js';
import {
  DOCKER_MANIFEST,
  OCI_MANIFEST,
  digestOf,
  errorCode,
  makeImage,
  manifestOf,
  pushBlob,
  putManifest,
  startRegistry,
  tempDir,
  type TestRegistry,
} from '../helpers.js';
import { listen, send } from '../support/socket.js';

const OCTET = { 'content-type': 'application/octet-stream' };

describe('robustness', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0)) await c();
  });
  async function registry(): Promise<TestRegistry> {
    const reg = await startRegistry();
    cleanups.push(reg.destroy);
    return reg;
  }

  it('a storage failure after the body arrived answers 500 UNKNOWN, not a client error', async () => {
    const root = await tempDir();
    const store = new FsBlobStore(root);
    await store.init();
    store.commitUpload = async () => {
      throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO' });
    };
    const config = loadConfig({ env: {}, overrides: { storage: { filesystem: { rootdirectory: root } } } });
    const app = await buildApp(config, { logger: false, store });
    cleanups.push(async () => {
      await app.close();
      await rm(root, { recursive: true, force: true });
    });
    const res = await app.inject({
      method: 'POST',
      url: `/v2/lib/app/blobs/uploads/?digest=${digestOf('payload')}`,
      headers: OCTET,
      payload: 'payload',
    });
    expect(res.statusCode).toBe(500);
    expect(errorCode(res)).toBe('UNKNOWN');
    expect(res.body).not.toContain('i/o error');
  });

  it('a chunk longer than its Content-Range is refused past the declared end', async () => {
    const reg = await registry();
    const base = await listen(reg.app);
    const post = await send(`${base}/v2/lib/app/blobs/uploads/`, { method: 'POST' });
    const location = new URL(post.headers.location as string, base);
    await send(location, { method: 'PATCH', headers: OCTET, body: Buffer.from('abcdef') });
    // Sent chunked: no Content-Length to compare against, so the body itself overruns.
    const res = await send(location, {
      method: 'PATCH',
      headers: { ...OCTET, 'content-range': '6-8' },
      body: Readable.from([Buffer.from('ghijkl')]),
    });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body.toString()).errors[0].code).toBe('SIZE_INVALID');
    const status = await send(location, { method: 'GET' });
    expect(status.headers.range).toBe('0-8');
    const put = await send(`${location}?digest=${digestOf('abcdefghi')}`, { method: 'PUT' });
    expect(put.status).toBe(201);
  });

  it('an automatic mount takes only blobs linked into a repository, never a manifest', async () => {
    const reg = await registry();
    const image = await makeImage(reg.app, 'private/app');
    await putManifest(reg.app, 'private/app', 'v1', image);
    const res = await reg.app.inject({ method: 'POST', url: `/v2/mine/blobs/uploads/?mount=${image.digest}` });
    expect(res.statusCode).toBe(202);
    expect((await reg.app.inject({ method: 'GET', url: `/v2/mine/blobs/${image.digest}` })).statusCode).toBe(404);
  });

  it('a manifest pushed again with another media type keeps its first, in the index and the store', async () => {
    const reg = await registry();
    const image = await makeImage(reg.app, 'lib/app');
    const { mediaType: _drop, ...rest } = JSON.parse(image.body.toString());
    const oci = manifestOf(rest, OCI_MANIFEST);
    expect((await putManifest(reg.app, 'lib/app', 'a', oci)).statusCode).toBe(201);
    expect((await putManifest(reg.app, 'lib/app', 'b', { ...oci, mediaType: DOCKER_MANIFEST })).statusCode).toBe(201);
    const got = await reg.app.inject({ method: 'GET', url: '/v2/lib/app/manifests/b' });
    expect(got.headers['content-type']).toBe(OCI_MANIFEST);
    const hex = oci.digest.slice('sha256:'.length);
    const link = JSON.parse(await readFile(join(reg.root, 'repositories/lib/app/_manifests/sha256', hex), 'utf8'));
    expect(link.mediaType).toBe(OCI_MANIFEST);
  });

  it('a blob whose content went missing from the store answers 404 without cache headers', async () => {
    const reg = await registry();
    const digest = await pushBlob(reg.app, 'lib/app', 'soon gone');
    const hex = digest.slice('sha256:'.length);
    await rm(join(reg.root, 'blobs/sha256', hex.slice(0, 2), hex));
    const res = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${digest}` });
    expect(res.statusCode).toBe(404);
    expect(errorCode(res)).toBe('BLOB_UNKNOWN');
    expect(res.headers['cache-control']).toBeUndefined();
  });

  it('temporary files left by a crash are removed at start', async () => {
    const reg = await registry();
    await reg.close();
    await mkdir(join(reg.root, '_tmp'), { recursive: true });
    await writeFile(join(reg.root, '_tmp', 'leftover'), 'half written');
    const again = await startRegistry({}, reg.root);
    cleanups.push(again.close);
    expect(await readdir(join(reg.root, '_tmp'))).toEqual([]);
  });

  it('referrers pages continue after `last` in digest order, even if that referrer is gone', async () => {
    const reg = await registry();
    const subject = { mediaType: OCI_MANIFEST, digest: digestOf('subject'), size: 7 };
    const digests: string[] = [];
    for (let i = 0; i < 3; i++) {
      const art = await makeImage(reg.app, 'lib/app', { layer: `ref${i}`, extra: { subject } });
      await putManifest(reg.app, 'lib/app', art.digest, art);
      digests.push(art.digest);
    }
    digests.sort();
    await reg.app.inject({ method: 'DELETE', url: `/v2/lib/app/manifests/${digests[0]}` });
    const res = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/referrers/${subject.digest}?last=${digests[0]}` });
    expect(res.json().manifests.map((d: { digest: string }) => d.digest)).toEqual(digests.slice(1));
  });
});
