import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf, errorCode, pushBlob, startRegistry, type TestRegistry } from '../helpers.js';

describe('blobs', () => {
  let reg: TestRegistry;
  const data = Buffer.from('0123456789abcdef');
  let digest: string;

  beforeEach(async () => {
    reg = await startRegistry();
    digest = await pushBlob(reg.app, 'lib/app', data);
  });
  afterEach(async () => {
    await reg.destroy();
  });

  it('GET returns the bytes with length, digest, type and ETag', async () => {
    const res = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${digest}` });
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.equals(data)).toBe(true);
    expect(res.headers['content-length']).toBe(String(data.length));
    expect(res.headers['docker-content-digest']).toBe(digest);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers.etag).toBe(`"${digest}"`);
  });

  it('HEAD has the real Content-Length and no body', async () => {
    const res = await reg.app.inject({ method: 'HEAD', url: `/v2/lib/app/blobs/${digest}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String(data.length));
    expect(res.headers['docker-content-digest']).toBe(digest);
    expect(res.body).toBe('');
  });

  it('answers If-None-Match with 304', async () => {
    const res = await reg.app.inject({
      method: 'GET',
      url: `/v2/lib/app/blobs/${digest}`,
      headers: { 'if-none-match': `"${digest}"` },
    });
    expect(res.statusCode).toBe(304);
    expect(res.body).toBe('');
  });

  it.each([
    ['bytes=2-5', 2, 5],
    ['bytes=10-', 10, 15],
    ['bytes=-4', 12, 15],
    ['bytes=14-100', 14, 15],
    ['bytes=0-0', 0, 0],
  ])('Range %s answers 206 with Content-Range', async (range, start, end) => {
    const res = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${digest}`, headers: { range } });
    expect(res.statusCode).toBe(206);
    expect(res.headers['content-range']).toBe(`bytes ${start}-${end}/${data.length}`);
    expect(res.headers['content-length']).toBe(String(end - start + 1));
    expect(res.rawPayload.equals(data.subarray(start, end + 1))).toBe(true);
  });

  it.each(['bytes=16-', 'bytes=20-30', 'bytes=5-2', 'bytes=-0'])('unsatisfiable Range %s answers 416', async (range) => {
    const res = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${digest}`, headers: { range } });
    expect(res.statusCode).toBe(416);
    expect(res.headers['content-range']).toBe(`bytes */${data.length}`);
    expect(errorCode(res)).toBeDefined();
  });

  it('ignores Range forms it does not serve and returns the whole blob', async () => {
    const res = await reg.app.inject({
      method: 'GET',
      url: `/v2/lib/app/blobs/${digest}`,
      headers: { range: 'bytes=0-1,4-5' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.equals(data)).toBe(true);
  });

  it('a zero-length blob can be pushed and read', async () => {
    const empty = await pushBlob(reg.app, 'lib/app', Buffer.alloc(0));
    expect(empty).toBe(digestOf(''));
    const res = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${empty}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe('0');
    expect(res.body).toBe('');
  });

  it('unknown blob answers 404 BLOB_UNKNOWN on GET and HEAD', async () => {
    const missing = digestOf('missing');
    const get = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${missing}` });
    expect(get.statusCode).toBe(404);
    expect(errorCode(get)).toBe('BLOB_UNKNOWN');
    const head = await reg.app.inject({ method: 'HEAD', url: `/v2/lib/app/blobs/${missing}` });
    expect(head.statusCode).toBe(404);
  });

  it('a blob is not visible from a repository it was not pushed or mounted to', async () => {
    const res = await reg.app.inject({ method: 'GET', url: `/v2/other/blobs/${digest}` });
    expect(res.statusCode).toBe(404);
    expect(errorCode(res)).toBe('BLOB_UNKNOWN');
  });

  it.each(['sha256:abc', 'sha256:' + 'A'.repeat(64), 'md5:' + 'a'.repeat(32), 'notadigest'])(
    'malformed digest %s answers 400 DIGEST_INVALID',
    async (bad) => {
      const res = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${bad}` });
      expect(res.statusCode).toBe(400);
      expect(errorCode(res)).toBe('DIGEST_INVALID');
    },
  );

  it('DELETE unlinks the blob from the repository only', async () => {
    await pushBlob(reg.app, 'other', data);
    const del = await reg.app.inject({ method: 'DELETE', url: `/v2/lib/app/blobs/${digest}` });
    expect(del.statusCode).toBe(202);
    const gone = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${digest}` });
    expect(gone.statusCode).toBe(404);
    const other = await reg.app.inject({ method: 'GET', url: `/v2/other/blobs/${digest}` });
    expect(other.statusCode).toBe(200);
    expect(other.rawPayload.equals(data)).toBe(true);
  });

  it('DELETE of an unknown blob answers 404 BLOB_UNKNOWN, and of a bad digest 400', async () => {
    const res = await reg.app.inject({ method: 'DELETE', url: `/v2/lib/app/blobs/${digestOf('nope')}` });
    expect(res.statusCode).toBe(404);
    expect(errorCode(res)).toBe('BLOB_UNKNOWN');
    const bad = await reg.app.inject({ method: 'DELETE', url: '/v2/lib/app/blobs/sha256:zz' });
    expect(bad.statusCode).toBe(400);
    expect(errorCode(bad)).toBe('DIGEST_INVALID');
  });
});
