import { readdir, readlink, rm, truncate } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf, startRegistry, type TestRegistry } from '../helpers.js';
import { fileSize, filesUnder, getDigest, listen, send, sendThenAbort, testBytes, waitFor, type SocketResponse } from '../support/socket.js';

const MiB = 1024 * 1024;
const REPO = 'stream/test';

/** The stored path of a blob under the storage root. */
function blobPath(root: string, digest: string): string {
  const hex = digest.slice('sha256:'.length);
  return join(root, 'blobs', 'sha256', hex.slice(0, 2), hex);
}

/** Appends `digest=` to an upload Location, which may already carry a query. */
function withDigest(location: URL, digest: string): URL {
  const url = new URL(location);
  url.searchParams.set('digest', digest);
  return url;
}

function expectUploadAccepted(res: SocketResponse, status: 202 | 204, size: number): void {
  expect(res.status, res.body.toString()).toBe(status);
  expect(res.headers.range).toBe(`0-${size - 1}`);
  expect(res.headers.location).toMatch(/^\/v2\/stream\/test\/blobs\/uploads\/[A-Za-z0-9-]+/);
  expect(res.headers['docker-upload-uuid']).toBeTruthy();
}

describe('blob streaming over a real socket', () => {
  let reg: TestRegistry;
  let base: string;

  beforeEach(async () => {
    reg = await startRegistry();
    base = await listen(reg.app);
  });
  afterEach(async () => {
    await reg.destroy();
  });

  async function startUpload(): Promise<URL> {
    const res = await send(`${base}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
    expect(res.status, res.body.toString()).toBe(202);
    expect(res.headers.range).toBe('0-0');
    return new URL(res.headers.location!, base);
  }

  async function expectBlob(digest: string, size: number): Promise<void> {
    const head = await send(`${base}/v2/${REPO}/blobs/${digest}`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(size));
    expect(head.headers['docker-content-digest']).toBe(digest);
    const got = await getDigest(`${base}/v2/${REPO}/blobs/${digest}`);
    expect(got.status).toBe(200);
    expect(got.length).toBe(size);
    expect(got.digest).toBe(digest);
    expect(await fileSize(blobPath(reg.root, digest))).toBe(size);
  }

  it('takes a chunked upload with Content-Range chunks and a last chunk on the PUT', async () => {
    const data = testBytes(3 * MiB + 512 * 1024 + 7, 11);
    const digest = digestOf(data);
    let location = await startUpload();
    const first = location.href;

    for (let i = 0; i < 3; i++) {
      const chunk = data.subarray(i * MiB, (i + 1) * MiB);
      const res = await send(location, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${i * MiB}-${(i + 1) * MiB - 1}` },
        body: chunk,
      });
      expectUploadAccepted(res, 202, (i + 1) * MiB);
      const next = new URL(res.headers.location!, base);
      expect(next.href).toBe(first); // the same session URL every time
      location = next;

      const status = await send(location, { method: 'GET' });
      expectUploadAccepted(status, 204, (i + 1) * MiB);
    }

    const last = data.subarray(3 * MiB);
    const put = await send(withDigest(location, digest), {
      method: 'PUT',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${3 * MiB}-${data.length - 1}` },
      body: last,
    });
    expect(put.status, put.body.toString()).toBe(201);
    expect(put.headers.location).toBe(`/v2/${REPO}/blobs/${digest}`);
    expect(put.headers['docker-content-digest']).toBe(digest);

    await expectBlob(digest, data.length);
    expect(await filesUnder(join(reg.root, 'uploads'))).toEqual([]);
    const gone = await send(location, { method: 'GET' });
    expect(gone.status).toBe(404);
  });

  it('takes a streamed PATCH with a chunked request body, then a PUT without a body', async () => {
    const data = testBytes(2 * MiB + 12345, 12);
    const digest = digestOf(data);
    const location = await startUpload();
    const framing: Array<string | undefined> = [];
    reg.app.server.on('request', (req: { method?: string; headers: Record<string, string | string[] | undefined> }) => {
      if (req.method === 'PATCH') framing.push(`${req.headers['transfer-encoding']}/${req.headers['content-length']}`);
    });

    const pieces = function* () {
      for (let off = 0; off < data.length; off += 64 * 1024) yield data.subarray(off, Math.min(off + 64 * 1024, data.length));
    };
    const patch = await send(location, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream' }, // no Content-Length: Transfer-Encoding: chunked
      body: Readable.from(pieces(), { objectMode: false }),
    });
    expectUploadAccepted(patch, 202, data.length);
    expect(framing).toEqual(['chunked/undefined']);

    const put = await send(withDigest(new URL(patch.headers.location!, base), digest), {
      method: 'PUT',
      headers: { 'content-length': '0' },
    });
    expect(put.status, put.body.toString()).toBe(201);
    expect(put.headers['docker-content-digest']).toBe(digest);
    await expectBlob(digest, data.length);
  });

  /** Pushes `data` in one POST and returns its digest. */
  async function pushWhole(data: Buffer): Promise<string> {
    const digest = digestOf(data);
    const post = await send(`${base}/v2/${REPO}/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream' },
      body: data,
    });
    expect(post.status, post.body.toString()).toBe(201);
    return digest;
  }

  it('answers a Range GET with 206 and the bytes of that range', async () => {
    const data = testBytes(MiB + 99, 13);
    const digest = await pushWhole(data);

    const ranged = await send(`${base}/v2/${REPO}/blobs/${digest}`, { method: 'GET', headers: { range: 'bytes=1000-300999' } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers['content-range']).toBe(`bytes 1000-300999/${data.length}`);
    expect(ranged.headers['content-length']).toBe('300000');
    expect(ranged.headers['docker-content-digest']).toBe(digest);
    expect(ranged.body.equals(data.subarray(1000, 301000))).toBe(true);

    const suffix = await send(`${base}/v2/${REPO}/blobs/${digest}`, { method: 'GET', headers: { range: 'bytes=-10' } });
    expect(suffix.status).toBe(206);
    expect(suffix.body.equals(data.subarray(data.length - 10))).toBe(true);

    const outside = await send(`${base}/v2/${REPO}/blobs/${digest}`, { method: 'GET', headers: { range: `bytes=${data.length}-` } });
    expect(outside.status).toBe(416);
    expect(outside.headers['content-range']).toBe(`bytes */${data.length}`);
  });

  it('serves a blob of several read chunks whole and by ranges across their edges', async () => {
    const data = testBytes(3 * MiB + 5, 21);
    const digest = await pushWhole(data);
    await expectBlob(digest, data.length);
    for (const [start, end] of [
      [MiB - 3, MiB + 2],
      [MiB - 10, 3 * MiB + 4],
      [2 * MiB, 2 * MiB],
      [0, 3 * MiB + 4],
    ] as const) {
      const res = await send(`${base}/v2/${REPO}/blobs/${digest}`, { method: 'GET', headers: { range: `bytes=${start}-${end}` } });
      expect(res.status).toBe(206);
      expect(res.headers['content-length']).toBe(String(end - start + 1));
      expect(res.body.equals(data.subarray(start, end + 1)), `bytes ${start}-${end}`).toBe(true);
    }
  });

  it('lets go of the file when a client leaves in the middle of a download, and serves the next one', async () => {
    const data = testBytes(16 * MiB, 22);
    const digest = await pushWhole(data);
    const path = blobPath(reg.root, digest);
    const blobOpen = async () => {
      for (const fd of await readdir('/proc/self/fd')) {
        if ((await readlink(`/proc/self/fd/${fd}`).catch(() => '')) === path) return true;
      }
      return false;
    };
    // Read the first bytes, then go: the server is blocked on a socket that nobody reads.
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(`${base}/v2/${REPO}/blobs/${digest}`, { agent: false });
      req.on('error', () => {}); // the destroy below is the point
      req.on('response', (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', reject);
      req.end();
    });
    await waitFor(async () => !(await blobOpen()), { what: 'the blob file to be closed' });
    const again = await getDigest(`${base}/v2/${REPO}/blobs/${digest}`);
    expect(again).toMatchObject({ status: 200, length: data.length, digest });
  });

  it('answers 500 without a body cut short when the stored blob is not the size the index says', async () => {
    const data = testBytes(MiB, 23);
    const digest = await pushWhole(data);
    await truncate(blobPath(reg.root, digest), MiB - 1);
    const res = await send(`${base}/v2/${REPO}/blobs/${digest}`, { method: 'GET' });
    expect(res.status).toBe(500);
    expect(JSON.parse(res.body.toString()).errors[0].code).toBe('UNKNOWN');
  });

  it('keeps the bytes of a PATCH whose client went away, and lets the upload continue from there', async () => {
    const data = testBytes(2 * MiB, 14);
    const digest = digestOf(data);
    const location = await startUpload();
    const id = location.pathname.split('/').pop()!;
    const uploadData = join(reg.root, 'uploads', id, 'data');

    const sent = data.subarray(0, MiB);
    await sendThenAbort(location, {
      method: 'PATCH',
      headers: {
        'content-type': 'application/octet-stream',
        'content-length': String(data.length),
        'content-range': `0-${data.length - 1}`,
      },
      sent,
      ready: async () => ((await fileSize(uploadData)) ?? 0) >= sent.length,
    });

    // The server is still up, and the upload reports what it kept.
    const health = await send(`${base}/v2/`, { method: 'GET' });
    expect(health.status).toBe(200);
    const status = await send(location, { method: 'GET' });
    expect(status.status).toBe(204);
    const kept = (await fileSize(uploadData))!;
    expect(kept).toBe(sent.length);
    expect(status.headers.range).toBe(`0-${kept - 1}`);

    // Continue from the offset the server reported (a status request waits for the aborted write to settle).
    const patch = await send(location, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${kept}-${data.length - 1}` },
      body: data.subarray(kept),
    });
    expectUploadAccepted(patch, 202, data.length);

    const put = await send(withDigest(location, digest), { method: 'PUT', headers: { 'content-length': '0' } });
    expect(put.status, put.body.toString()).toBe(201);
    expect(put.headers['docker-content-digest']).toBe(digest);
    await expectBlob(digest, data.length);
  });

  it('leaves nothing behind when a monolithic POST body is cut short', async () => {
    const data = testBytes(2 * MiB, 15);
    const digest = digestOf(data);
    const uploads = join(reg.root, 'uploads');
    const sent = data.subarray(0, MiB);

    await sendThenAbort(`${base}/v2/${REPO}/blobs/uploads/?digest=${digest}`, {
      method: 'POST',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
      sent,
      ready: async () => {
        for (const f of await filesUnder(uploads)) if (((await fileSize(join(uploads, f))) ?? 0) >= sent.length) return true;
        return false;
      },
    });

    // The server cleans up its temporary upload once it sees the connection go.
    await waitFor(async () => (await filesUnder(uploads)).length === 0, { timeoutMs: 5000, what: 'the temporary upload to be removed' });
    const head = await send(`${base}/v2/${REPO}/blobs/${digest}`, { method: 'HEAD' });
    expect(head.status).toBe(404);
    expect(await filesUnder(join(reg.root, 'blobs'))).toEqual([]);
    expect(await filesUnder(join(reg.root, '_tmp'))).toEqual([]);
    const health = await send(`${base}/v2/`, { method: 'GET' });
    expect(health.status).toBe(200);
  });
});

describe('an upload across a restart', () => {
  let root: string | undefined;
  afterEach(async () => {
    if (root) await rm(root, { recursive: true, force: true });
    root = undefined;
  });

  it('continues on a new app over the same storage root and completes with the right digest', async () => {
    const data = testBytes(3 * MiB + 4321, 16);
    const digest = digestOf(data);
    const split = 2 * MiB;

    const before = await startRegistry();
    root = before.root;
    let location: URL;
    try {
      const base = await listen(before.app);
      const post = await send(`${base}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: { 'content-length': '0' } });
      expect(post.status).toBe(202);
      location = new URL(post.headers.location!, base);
      const patch = await send(location, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${split - 1}` },
        body: data.subarray(0, split),
      });
      expectUploadAccepted(patch, 202, split);
    } finally {
      await before.close();
    }

    const after = await startRegistry({}, root);
    try {
      const base = await listen(after.app);
      const at = new URL(location.pathname + location.search, base); // the same session on the new server
      const status = await send(at, { method: 'GET' });
      expectUploadAccepted(status, 204, split);
      expect(status.headers.location).toBe(location.pathname);

      const patch = await send(at, {
        method: 'PATCH',
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${split}-${data.length - 1}` },
        body: data.subarray(split),
      });
      expectUploadAccepted(patch, 202, data.length);

      const put = await send(withDigest(at, digest), { method: 'PUT', headers: { 'content-length': '0' } });
      expect(put.status, put.body.toString()).toBe(201);
      expect(put.headers['docker-content-digest']).toBe(digest);

      const got = await getDigest(`${base}/v2/${REPO}/blobs/${digest}`);
      expect(got.status).toBe(200);
      expect(got.length).toBe(data.length);
      expect(got.digest).toBe(digest);
      expect(await fileSize(blobPath(root, digest))).toBe(data.length);
    } finally {
      await after.close();
    }
  });
});
