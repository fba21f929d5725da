import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { NotFoundError, StoreUnavailableError } from '../../src/storage/blob-store.js';
import { MIN_PART_SIZE, S3BlobStore, type S3BlobStoreOptions } from '../../src/storage/s3-blob-store.js';
import { startFaultProxy, type FaultProxy, type ProxiedRequest } from '../support/fault-proxy.js';
import { listKeys, startS3Server, type S3Server } from '../support/s3.js';
import { blobStoreContract, readAll } from './contract.js';

const MiB = 1024 * 1024;

let server: S3Server;
beforeAll(async () => {
  server = await startS3Server();
});
afterAll(async () => {
  await server?.stop();
});

function storeOptions(endpoint: string, root: string, extra: Partial<S3BlobStoreOptions> = {}): S3BlobStoreOptions {
  return {
    bucket: server.bucket,
    region: server.region,
    endpoint,
    credentials: { accessKeyId: server.accessKey, secretAccessKey: server.secretKey },
    forcePathStyle: true,
    rootDirectory: root,
    chunkSize: MIN_PART_SIZE,
    ...extra,
  };
}

async function openStore(endpoint: string, root: string, extra?: Partial<S3BlobStoreOptions>): Promise<S3BlobStore> {
  const store = new S3BlobStore(storeOptions(endpoint, root, extra));
  await store.init();
  return store;
}

/** Every key in the bucket under a root, the root itself cut off. */
async function keysUnder(root: string): Promise<string[]> {
  return (await listKeys(server, `${root}/`)).map((k) => k.slice(root.length + 1)).sort();
}

blobStoreContract('S3BlobStore', async () => {
  // Each test gets its own root in the shared bucket.
  const root = `contract/${randomUUID()}`;
  const store = await openStore(server.endpoint, root);
  return {
    store,
    restart: () => openStore(server.endpoint, root),
    cleanup: async () => {
      try {
        // Once the uploads a test left open are cancelled, no upload object may remain.
        for await (const { id } of store.listUploads()) await store.cancelUpload(id);
        expect((await keysUnder(root)).filter((k) => k.startsWith('uploads/'))).toEqual([]);
      } finally {
        await store.close();
      }
    },
  };
});

async function* chunksOf(data: Buffer, size: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, Math.min(i + size, data.length));
}

const isUploadPart = (r: ProxiedRequest) => r.method === 'PUT' && r.query.has('uploadId') && r.query.has('partNumber');

describe('S3BlobStore against S3 rules', () => {
  let proxy: FaultProxy;
  let store: S3BlobStore;
  let root: string;

  beforeEach(async () => {
    proxy = await startFaultProxy(server.endpoint);
    root = `s3/${randomUUID()}`;
    store = await openStore(proxy.url, root, { maxAttempts: 3 });
  });
  afterEach(async () => {
    await store.close();
    await proxy.close();
  });

  /** The sizes of the parts sent, per multipart upload, in part-number order. */
  function partSizes(): number[][] {
    const byUpload = new Map<string, Array<[number, number]>>();
    for (const r of proxy.requests.filter(isUploadPart)) {
      const id = r.query.get('uploadId')!;
      const list = byUpload.get(id) ?? [];
      list.push([Number(r.query.get('partNumber')), Number(r.headers['content-length'])]);
      byUpload.set(id, list);
    }
    return [...byUpload.values()].map((l) => l.sort((a, b) => a[0] - b[0]).map(([, size]) => size));
  }

  it('sends parts of 5 MiB or more, except the last, whatever the sizes of the appends', async () => {
    const data = randomBytes(23 * MiB + 12345);
    const id = randomUUID();
    await store.createUpload(id);
    // Odd chunk and append sizes: 3 MiB + 1, 700 KiB, 64 KiB, a 9 MiB append, then the rest.
    let offset = 0;
    for (const [length, chunk] of [
      [3 * MiB + 1, 100_000],
      [700 * 1024, 4096],
      [64 * 1024, 64 * 1024],
      [9 * MiB, 1 * MiB + 7],
      [data.length, 333_333],
    ] as const) {
      const end = Math.min(offset + length, data.length);
      offset = await store.appendUpload(id, offset, chunksOf(data.subarray(offset, end), chunk));
      expect(offset).toBe(end);
      expect(await store.uploadSize(id)).toBe(end);
    }
    const key = 'blobs/sha256/xx/big';
    await store.commitUpload(id, key);
    await store.cancelUpload(id);

    const uploads = partSizes();
    expect(uploads).toHaveLength(1);
    const sizes = uploads[0]!;
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(data.length);
    for (const size of sizes.slice(0, -1)) expect(size).toBeGreaterThanOrEqual(MIN_PART_SIZE);
    expect(createHash('sha256').update(await readAll(await store.read(key))).digest('hex')).toBe(
      createHash('sha256').update(data).digest('hex'),
    );
    expect(await keysUnder(root)).toEqual([key]);
  });

  it('keeps small uploads out of multipart and commits them with one copy', async () => {
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, 0, chunksOf(Buffer.from('small blob'), 3));
    await store.commitUpload(id, 'blobs/small');
    expect(proxy.requests.filter((r) => r.query.has('uploads') || r.query.has('uploadId'))).toEqual([]);
    expect(proxy.requests.filter((r) => r.headers['x-amz-copy-source'] !== undefined)).toHaveLength(1);
    expect((await store.get('blobs/small'))?.toString()).toBe('small blob');
  });

  it('copies an object past the copy limit part by part', async () => {
    await store.close();
    store = await openStore(proxy.url, root, { copyLimit: 6 * MiB });
    const data = randomBytes(13 * MiB + 5);
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, 0, chunksOf(data, MiB));
    await store.commitUpload(id, 'blobs/copied');
    expect(proxy.requests.filter((r) => r.headers['x-amz-copy-source'] !== undefined)).toEqual([]);
    expect((await readAll(await store.read('blobs/copied'))).equals(data)).toBe(true);
    expect(partSizes().map((sizes) => sizes.slice(0, -1).every((s) => s >= MIN_PART_SIZE))).toEqual([true, true]);
    await store.cancelUpload(id);
    expect(await keysUnder(root)).toEqual(['blobs/copied']);
  });

  it('retries throttling and server errors, and the upload is whole', async () => {
    proxy.inject({ match: isUploadPart, fault: { kind: 'status', status: 503, code: 'SlowDown' }, times: 2 });
    proxy.inject({ match: (r) => r.method === 'PUT', fault: { kind: 'status', status: 500, code: 'InternalError' }, times: 1 });
    proxy.inject({ match: (r) => r.query.has('uploadId') && r.method === 'POST', fault: { kind: 'reset' }, times: 1 });
    const data = randomBytes(11 * MiB);
    const id = randomUUID();
    await store.createUpload(id);
    expect(await store.appendUpload(id, 0, chunksOf(data, 256 * 1024))).toBe(data.length);
    await store.commitUpload(id, 'blobs/retried');
    expect((await readAll(await store.read('blobs/retried'))).equals(data)).toBe(true);
  });

  it('reports an S3 that keeps failing as unavailable, keeps the upload where it was, and shows no object', async () => {
    const id = randomUUID();
    await store.createUpload(id);
    const first = randomBytes(6 * MiB);
    expect(await store.appendUpload(id, 0, chunksOf(first, MiB))).toBe(first.length);

    proxy.inject({ match: isUploadPart, fault: { kind: 'status', status: 503, code: 'SlowDown' } });
    const more = randomBytes(7 * MiB);
    const failed = store.appendUpload(id, first.length, chunksOf(more, MiB));
    await expect(failed).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(failed).rejects.toMatchObject({ throttled: true });
    expect(await store.uploadSize(id)).toBe(first.length);

    proxy.clear();
    proxy.inject({ match: (r) => r.headers['x-amz-copy-source'] !== undefined, fault: { kind: 'status', status: 500, code: 'InternalError' } });
    await expect(store.commitUpload(id, 'blobs/never')).rejects.toMatchObject({ name: 'StoreUnavailableError', throttled: false });
    expect(await store.stat('blobs/never')).toBeNull();

    proxy.clear();
    // The upload goes on from where it stood, and commits.
    expect(await store.appendUpload(id, first.length, chunksOf(more, MiB))).toBe(first.length + more.length);
    await store.commitUpload(id, 'blobs/finally');
    expect((await readAll(await store.read('blobs/finally'))).equals(Buffer.concat([first, more]))).toBe(true);
    await store.cancelUpload(id);
    expect(await keysUnder(root)).toEqual(['blobs/finally']);
  });

  it('keeps only the parts S3 took when it fails in the middle of a long append, and the upload resumes there', async () => {
    const data = randomBytes(23 * MiB);
    const id = randomUUID();
    await store.createUpload(id);
    expect(await store.appendUpload(id, 0, chunksOf(data.subarray(0, 2 * MiB), MiB))).toBe(2 * MiB);
    // The second part fails (all 3 attempts) while the client is still sending: the bytes gathered
    // since are not kept, and nothing is sent after the failure.
    proxy.inject({ match: (r) => isUploadPart(r) && r.query.get('partNumber') === '2', fault: { kind: 'status', status: 500, code: 'InternalError' }, times: 3 });
    await expect(store.appendUpload(id, 2 * MiB, chunksOf(data.subarray(2 * MiB), 700_001))).rejects.toBeInstanceOf(StoreUnavailableError);
    const kept = await store.uploadSize(id);
    expect(kept).toBe(5 * MiB);
    expect(proxy.requests.filter(isUploadPart).map((r) => r.query.get('partNumber'))).toEqual(['1', '2', '2', '2']);

    proxy.clear();
    expect(await store.appendUpload(id, kept!, chunksOf(data.subarray(kept!), 3 * MiB + 1))).toBe(data.length);
    expect((await readAll(await store.readUpload(id))).equals(data)).toBe(true);
    await store.commitUpload(id, 'blobs/resumed');
    expect((await readAll(await store.read('blobs/resumed'))).equals(data)).toBe(true);
    await store.cancelUpload(id);
    expect(await keysUnder(root)).toEqual(['blobs/resumed']);
  });

  it('finishes a commit whose multipart upload was completed by an attempt that died before saving', async () => {
    const data = randomBytes(7 * MiB);
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, 0, chunksOf(data, MiB));
    // The state save after the completion fails: the next commit finds the multipart upload gone.
    proxy.inject({ match: (r) => r.method === 'PUT' && r.path.endsWith('/state.json'), fault: { kind: 'status', status: 403, code: 'AccessDenied' }, times: 1 });
    await expect(store.commitUpload(id, 'blobs/sealed')).rejects.toMatchObject({ name: 'S3RequestError', code: 'AccessDenied', status: 403 });
    expect(await store.stat('blobs/sealed')).toBeNull();
    // S3 answers parts of a completed multipart upload with NoSuchUpload (s3rver would take them).
    proxy.inject({ match: isUploadPart, fault: { kind: 'status', status: 404, code: 'NoSuchUpload' }, times: 1 });
    await store.commitUpload(id, 'blobs/sealed');
    expect((await readAll(await store.read('blobs/sealed'))).equals(data)).toBe(true);
    await store.cancelUpload(id);
    expect(await keysUnder(root)).toEqual(['blobs/sealed']);
  });

  it('ends an upload whose multipart upload S3 no longer has (a lifecycle rule aborted it)', async () => {
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, 0, chunksOf(randomBytes(6 * MiB), MiB));
    proxy.inject({ match: isUploadPart, fault: { kind: 'status', status: 404, code: 'NoSuchUpload' } });
    await expect(store.appendUpload(id, 6 * MiB, chunksOf(randomBytes(5 * MiB), MiB))).rejects.toBeInstanceOf(NotFoundError);
    proxy.inject({ match: (r) => r.method === 'POST' && r.query.has('uploadId'), fault: { kind: 'status', status: 404, code: 'NoSuchUpload' } });
    await expect(store.commitUpload(id, 'blobs/aborted')).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.stat('blobs/aborted')).toBeNull();
  });

  it('does not cancel an upload whose state cannot be read for now, so its multipart upload is not lost', async () => {
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, 0, chunksOf(randomBytes(6 * MiB), MiB));
    proxy.inject({ match: (r) => r.method === 'GET' && r.path.endsWith('/state.json'), fault: { kind: 'status', status: 500, code: 'InternalError' } });
    await expect(store.cancelUpload(id)).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(proxy.requests.filter((r) => r.method === 'DELETE')).toEqual([]);
    proxy.clear();
    await store.cancelUpload(id);
    expect(proxy.requests.filter((r) => r.method === 'DELETE' && r.query.has('uploadId'))).toHaveLength(1);
    expect(await keysUnder(root)).toEqual([]);
  });

  it('does not fetch again for a reader that went away with an error', async () => {
    await store.put('blobs/left', randomBytes(3 * MiB));
    const stream = await store.read('blobs/left');
    for await (const chunk of stream) {
      expect((chunk as Buffer).length).toBeGreaterThan(0);
      break; // destroys the stream
    }
    const again = await store.read('blobs/left');
    await new Promise<void>((resolve) => {
      again.once('data', () => again.destroy(Object.assign(new Error('client went away'), { code: 'ECONNRESET' })));
      again.once('close', resolve);
      again.once('error', () => undefined);
    });
    const unread = await store.read('blobs/left');
    unread.destroy();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/blobs/left'))).toHaveLength(3);
  });

  it('resumes a read that S3 cuts off mid-stream, from where it stopped', async () => {
    const data = randomBytes(3 * MiB);
    await store.put('blobs/cut', data);
    proxy.inject({ match: (r) => r.method === 'GET' && r.path.endsWith('/blobs/cut'), fault: { kind: 'cut', afterBytes: MiB }, times: 2 });
    expect((await readAll(await store.read('blobs/cut'))).equals(data)).toBe(true);
    const gets = proxy.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/blobs/cut'));
    expect(gets).toHaveLength(3);
    expect(gets[1]!.headers.range).toMatch(/^bytes=\d+-3145727$/);
    expect(gets[1]!.headers['if-match']).toBeDefined();

    proxy.inject({ match: (r) => r.method === 'GET' && r.path.endsWith('/blobs/cut'), fault: { kind: 'cut', afterBytes: 100 }, times: 2 });
    const part = await readAll(await store.read('blobs/cut', { start: 1000, end: 2_000_000 }));
    expect(part.equals(data.subarray(1000, 2_000_001))).toBe(true);
  });

  it('gives up a read that keeps breaking, with an error', async () => {
    await store.put('blobs/broken', randomBytes(MiB));
    proxy.inject({ match: (r) => r.method === 'GET' && r.path.endsWith('/blobs/broken'), fault: { kind: 'cut', afterBytes: 10 } });
    await expect(readAll(await store.read('blobs/broken'))).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  it('continues an upload on another store instance, in the middle of its parts and tail', async () => {
    const data = randomBytes(12 * MiB + 999);
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, 0, chunksOf(data.subarray(0, 7 * MiB), MiB));
    const other = await openStore(server.endpoint, root);
    try {
      expect(await other.uploadSize(id)).toBe(7 * MiB);
      expect(await other.appendUpload(id, 7 * MiB, chunksOf(data.subarray(7 * MiB), 100_000))).toBe(data.length);
      expect((await readAll(await other.readUpload(id))).equals(data)).toBe(true);
      await other.commitUpload(id, 'blobs/moved');
      expect((await readAll(await store.read('blobs/moved'))).equals(data)).toBe(true);
    } finally {
      await other.close();
    }
  });

  it('reopens an upload that was read back, and keeps its bytes if the reopening fails', async () => {
    const data = randomBytes(8 * MiB);
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, 0, chunksOf(data, MiB));
    expect((await readAll(await store.readUpload(id))).equals(data)).toBe(true);

    proxy.inject({ match: isUploadPart, fault: { kind: 'status', status: 500, code: 'InternalError' } });
    await expect(store.appendUpload(id, data.length, chunksOf(Buffer.from('more'), 4))).rejects.toBeInstanceOf(StoreUnavailableError);
    expect(await store.uploadSize(id)).toBe(data.length);
    expect((await readAll(await store.readUpload(id))).equals(data)).toBe(true);

    proxy.clear();
    expect(await store.appendUpload(id, data.length, chunksOf(Buffer.from('more'), 4))).toBe(data.length + 4);
    expect((await readAll(await store.readUpload(id))).equals(Buffer.concat([data, Buffer.from('more')]))).toBe(true);
    await store.cancelUpload(id);
    expect(await keysUnder(root)).toEqual([]);
    // No multipart upload is left open either: every one created was completed or aborted.
    const created = proxy.requests.filter((r) => r.method === 'POST' && r.query.has('uploads')).length;
    const ended = proxy.requests.filter((r) => (r.method === 'POST' || r.method === 'DELETE') && r.query.has('uploadId')).length;
    expect(ended).toBe(created);
  });

  it('aborts the multipart upload when an upload is cancelled', async () => {
    const id = randomUUID();
    await store.createUpload(id);
    await store.appendUpload(id, 0, chunksOf(randomBytes(6 * MiB), MiB));
    await store.cancelUpload(id);
    expect(proxy.requests.filter((r) => r.method === 'DELETE' && r.query.has('uploadId'))).toHaveLength(1);
    expect(await store.uploadSize(id)).toBeNull();
    expect(await keysUnder(root)).toEqual([]);
  });

  it('gives presigned URLs that S3 answers with the object', async () => {
    await store.put('blobs/direct', Buffer.from('straight from the bucket'));
    const url = await store.directUrl('blobs/direct');
    expect(url).toContain('X-Amz-Signature=');
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('straight from the bucket');
    const ranged = await fetch(url, { headers: { range: 'bytes=9-12' } });
    expect(ranged.status).toBe(206);
    expect(await ranged.text()).toBe('from');
  });

  it('lists a prefix across pages', async () => {
    await store.close();
    store = await openStore(proxy.url, root, { pageSize: 3 });
    const names = Array.from({ length: 8 }, (_, i) => `repositories/paged/_tags/t${i}`);
    await Promise.all(names.map((key) => store.put(key, Buffer.from(key))));
    await store.put('repositories/pagedx/_tags/other', Buffer.from('x'));
    const listed: string[] = [];
    for await (const item of store.list('repositories/paged/')) listed.push(item.key);
    expect(listed.sort()).toEqual(names.sort());
    expect(proxy.requests.filter((r) => r.query.get('list-type') === '2')).toHaveLength(3);
  });

  it('refuses to start on a bucket that does not exist or credentials it refuses', async () => {
    const missing = new S3BlobStore({ ...storeOptions(server.endpoint, root), bucket: 'no-such-bucket' });
    await expect(missing.init()).rejects.toThrow(/no-such-bucket.*does not exist/);
    await missing.close();
    const stranger = new S3BlobStore({ ...storeOptions(server.endpoint, root), credentials: { accessKeyId: 'NOBODY', secretAccessKey: 'x' } });
    await expect(stranger.init()).rejects.toThrow(`cannot open S3 bucket "${server.bucket}": access was denied`);
    await stranger.close();
  });

  const isDeleteObjects = (r: ProxiedRequest) => r.method === 'POST' && r.query.has('delete');

  it('deletes many keys in requests of 1,000 at most, each with a Content-MD5', async () => {
    const names = Array.from({ length: 2500 }, (_, i) => `blobs/sha256/ab/absent-${i}`);
    await store.put('blobs/sha256/ab/absent-2499', Buffer.from('the last one is there'));
    expect(await store.deleteMany(names)).toEqual([]);
    const batches = proxy.requests.filter(isDeleteObjects);
    expect(batches).toHaveLength(3);
    for (const r of batches) expect(r.headers['content-md5']).toMatch(/^[A-Za-z0-9+/]{22}==$/);
    expect(await keysUnder(root)).toEqual([]);
  });

  it('fails every key of a DeleteObjects request that keeps failing, and goes on with the next', async () => {
    const names = Array.from({ length: 1001 }, (_, i) => `blobs/sha256/cd/k-${i}`);
    await store.put(names[0]!, Buffer.from('in the first request'));
    await store.put(names[1000]!, Buffer.from('in the second'));
    proxy.inject({ match: isDeleteObjects, fault: { kind: 'status', status: 500, code: 'InternalError' }, times: 3 });
    const failures = await store.deleteMany(names);
    expect(failures.map((f) => f.key)).toEqual(names.slice(0, 1000));
    for (const f of failures) expect(f.error).toBeInstanceOf(StoreUnavailableError);
    expect(proxy.requests.filter(isDeleteObjects)).toHaveLength(4);
    expect(await keysUnder(root)).toEqual([names[0]!]);
  });

  it('moves an object past the copy limit part by part, then deletes the source', async () => {
    await store.close();
    store = await openStore(proxy.url, root, { copyLimit: 6 * MiB });
    const data = randomBytes(11 * MiB + 3);
    await store.put('blobs/big', data);
    await store.move('blobs/big', 'trash/big');
    expect(proxy.requests.filter((r) => r.headers['x-amz-copy-source'] !== undefined)).toEqual([]);
    expect((await readAll(await store.read('trash/big'))).equals(data)).toBe(true);
    expect(await keysUnder(root)).toEqual(['trash/big']);
  });

  it('moves a small object with one CopyObject', async () => {
    await store.put('blobs/small', Buffer.from('small'));
    await store.move('blobs/small', 'trash/small');
    expect(proxy.requests.filter((r) => r.headers['x-amz-copy-source'] !== undefined)).toHaveLength(1);
    expect(await keysUnder(root)).toEqual(['trash/small']);
  });

  it('answers NotFoundError for an upload id that is not one', async () => {
    await expect(store.appendUpload('../escape', 0, chunksOf(Buffer.from('x'), 1))).rejects.toBeInstanceOf(NotFoundError);
    expect(await store.uploadSize('../escape')).toBeNull();
    await expect(store.cancelUpload('../escape')).resolves.toBeUndefined();
  });
});

describe('S3BlobStore deleteMany against the errors of a DeleteObjects answer', () => {
  let standIn: Server;
  let store: S3BlobStore;
  const received: Array<{ md5: string | undefined; body: Buffer }> = [];

  /** Answers every DeleteObjects as S3 does when some of its keys could not be deleted. */
  const answer = `<?xml version="1.0" encoding="UTF-8"?>
<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Error><Key>r/blobs/denied</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error>
<Error><Key>r/blobs/gone</Key><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>
<Error><Key>r/blobs/slow</Key><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>
<Error><Key>r/never/asked</Key><Code>InternalError</Code><Message>not one of ours</Message></Error>
</DeleteResult>`;

  beforeAll(async () => {
    standIn = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ md5: req.headers['content-md5'] as string | undefined, body: Buffer.concat(chunks) });
        res.writeHead(200, { 'content-type': 'application/xml' }).end(answer);
      });
    });
    await new Promise<void>((resolve) => standIn.listen(0, '127.0.0.1', resolve));
    const { port } = standIn.address() as AddressInfo;
    store = new S3BlobStore(storeOptions(`http://127.0.0.1:${port}`, 'r'));
  });
  afterAll(async () => {
    await store?.close();
    await new Promise((resolve) => standIn?.close(resolve));
  });

  it('returns each key S3 could not delete with its error; NoSuchKey and strangers are not failures', async () => {
    const failures = await store.deleteMany(['blobs/denied', 'blobs/gone', 'blobs/slow', 'blobs/fine']);
    expect(failures.map((f) => f.key).sort()).toEqual(['blobs/denied', 'blobs/slow']);
    expect(failures.find((f) => f.key === 'blobs/denied')!.error).toMatchObject({ name: 'S3RequestError', code: 'AccessDenied' });
    expect(failures.find((f) => f.key === 'blobs/slow')!.error).toMatchObject({ name: 'StoreUnavailableError', throttled: true });
    expect(received).toHaveLength(1);
    const sent = received[0]!;
    expect(sent.md5).toBe(createHash('md5').update(sent.body).digest('base64'));
    expect(sent.body.toString()).toContain('<Quiet>true</Quiet>');
  });
});
