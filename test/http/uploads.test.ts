import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { digestOf, errorCode, pushBlob, startRegistry, type TestRegistry } from '../helpers.js';

const OCTET = { 'content-type': 'application/octet-stream' };

describe('blob uploads', () => {
  let reg: TestRegistry;
  beforeEach(async () => {
    reg = await startRegistry();
  });
  afterEach(async () => {
    await reg.destroy();
  });

  async function startSession(repo = 'lib/app'): Promise<string> {
    const res = await reg.app.inject({ method: 'POST', url: `/v2/${repo}/blobs/uploads/` });
    expect(res.statusCode).toBe(202);
    return res.headers.location as string;
  }

  async function blobStatus(repo: string, digest: string): Promise<number> {
    return (await reg.app.inject({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}` })).statusCode;
  }

  it('POST opens a session: 202, Location, Docker-Upload-UUID, Range 0-0', async () => {
    const res = await reg.app.inject({ method: 'POST', url: '/v2/lib/app/blobs/uploads/' });
    expect(res.statusCode).toBe(202);
    const uuid = res.headers['docker-upload-uuid'] as string;
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.location).toBe(`/v2/lib/app/blobs/uploads/${uuid}`);
    expect(res.headers.range).toBe('0-0');
    expect(res.headers['content-length']).toBe('0');
  });

  it('uses http.host for absolute Locations when it is configured', async () => {
    const abs = await startRegistry({ http: { host: 'https://registry.example.com' } });
    try {
      const res = await abs.app.inject({ method: 'POST', url: '/v2/lib/app/blobs/uploads/' });
      expect(res.headers.location).toMatch(/^https:\/\/registry\.example\.com\/v2\/lib\/app\/blobs\/uploads\//);
    } finally {
      await abs.destroy();
    }
  });

  it('takes chunks with Content-Range in order and reports Range after each', async () => {
    const data = Buffer.from('a'.repeat(22) + 'b'.repeat(20));
    const digest = digestOf(data);
    const location = await startSession();

    const first = await reg.app.inject({
      method: 'PATCH',
      url: location,
      headers: { ...OCTET, 'content-range': '0-21' },
      payload: data.subarray(0, 22),
    });
    expect(first.statusCode).toBe(202);
    expect(first.headers.range).toBe('0-21');
    expect(first.headers.location).toBe(location);

    const status = await reg.app.inject({ method: 'GET', url: location });
    expect(status.statusCode).toBe(204);
    expect(status.headers.range).toBe('0-21');
    expect(status.headers.location).toBe(location);

    const second = await reg.app.inject({
      method: 'PATCH',
      url: first.headers.location as string,
      headers: { ...OCTET, 'content-range': '22-41' },
      payload: data.subarray(22),
    });
    expect(second.statusCode).toBe(202);
    expect(second.headers.range).toBe('0-41');

    const put = await reg.app.inject({ method: 'PUT', url: `${location}?digest=${digest}`, headers: { 'content-length': '0' } });
    expect(put.statusCode).toBe(201);
    expect(put.headers.location).toBe(`/v2/lib/app/blobs/${digest}`);
    expect(put.headers['docker-content-digest']).toBe(digest);

    const get = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${digest}` });
    expect(get.rawPayload.equals(data)).toBe(true);
    // The session is over.
    expect((await reg.app.inject({ method: 'GET', url: location })).statusCode).toBe(404);
  });

  it('answers an out-of-order chunk with 416, Range and Location, and keeps the session', async () => {
    const location = await startSession();
    const early = await reg.app.inject({
      method: 'PATCH',
      url: location,
      headers: { ...OCTET, 'content-range': '22-41' },
      payload: Buffer.alloc(20, 1),
    });
    expect(early.statusCode).toBe(416);
    expect(early.headers.range).toBe('0-0');
    expect(early.headers.location).toBe(location);
    expect(errorCode(early)).toBe('BLOB_UPLOAD_INVALID');

    await reg.app.inject({ method: 'PATCH', url: location, headers: { ...OCTET, 'content-range': '0-21' }, payload: Buffer.alloc(22, 2) });
    const repeat = await reg.app.inject({
      method: 'PATCH',
      url: location,
      headers: { ...OCTET, 'content-range': '0-21' },
      payload: Buffer.alloc(22, 2),
    });
    expect(repeat.statusCode).toBe(416);
    expect(repeat.headers.range).toBe('0-21');

    const status = await reg.app.inject({ method: 'GET', url: location });
    expect(status.statusCode).toBe(204);
    expect(status.headers.range).toBe('0-21');
  });

  it.each(['abc', '5-2', 'bytes 0-', '-5'])('answers a malformed Content-Range %s with 416', async (range) => {
    const location = await startSession();
    const res = await reg.app.inject({ method: 'PATCH', url: location, headers: { ...OCTET, 'content-range': range }, payload: 'xx' });
    expect(res.statusCode).toBe(416);
    expect(errorCode(res)).toBe('BLOB_UPLOAD_INVALID');
  });

  it('answers a Content-Range whose length differs from Content-Length with 400 SIZE_INVALID and appends nothing', async () => {
    const location = await startSession();
    const res = await reg.app.inject({ method: 'PATCH', url: location, headers: { ...OCTET, 'content-range': '0-9' }, payload: 'abc' });
    expect(res.statusCode).toBe(400);
    expect(errorCode(res)).toBe('SIZE_INVALID');
    const status = await reg.app.inject({ method: 'GET', url: location });
    expect(status.headers.range).toBe('0-0');
  });

  it('takes a streamed PATCH without Content-Range and a PUT carrying the last chunk', async () => {
    const location = await startSession();
    const part1 = Buffer.from('hello, ');
    const part2 = Buffer.from('world');
    const digest = digestOf(Buffer.concat([part1, part2]));
    const patch = await reg.app.inject({ method: 'PATCH', url: location, headers: OCTET, payload: part1 });
    expect(patch.statusCode).toBe(202);
    expect(patch.headers.range).toBe(`0-${part1.length - 1}`);
    const put = await reg.app.inject({
      method: 'PUT',
      url: `${location}?digest=${digest}`,
      headers: { ...OCTET, 'content-range': `${part1.length}-${part1.length + part2.length - 1}` },
      payload: part2,
    });
    expect(put.statusCode).toBe(201);
    const get = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${digest}` });
    expect(get.body).toBe('hello, world');
  });

  it('answers a final PUT whose chunk does not continue the upload with 416', async () => {
    const location = await startSession();
    await reg.app.inject({ method: 'PATCH', url: location, headers: OCTET, payload: 'abcd' });
    const put = await reg.app.inject({
      method: 'PUT',
      url: `${location}?digest=${digestOf('abcdef')}`,
      headers: { ...OCTET, 'content-range': '2-3' },
      payload: 'ef',
    });
    expect(put.statusCode).toBe(416);
    expect(put.headers.range).toBe('0-3');
  });

  it('a whole blob in a single PUT after POST', async () => {
    const location = await startSession();
    const data = Buffer.from('single put');
    const put = await reg.app.inject({ method: 'PUT', url: `${location}?digest=${digestOf(data)}`, headers: OCTET, payload: data });
    expect(put.statusCode).toBe(201);
    expect(await blobStatus('lib/app', digestOf(data))).toBe(200);
  });

  it('a PUT whose digest does not match answers 400 DIGEST_INVALID and stores nothing', async () => {
    const location = await startSession();
    const wrong = digestOf('something else');
    const put = await reg.app.inject({ method: 'PUT', url: `${location}?digest=${wrong}`, headers: OCTET, payload: 'data' });
    expect(put.statusCode).toBe(400);
    expect(errorCode(put)).toBe('DIGEST_INVALID');
    expect(await blobStatus('lib/app', wrong)).toBe(404);
    expect(await blobStatus('lib/app', digestOf('data'))).toBe(404);
    expect((await reg.app.inject({ method: 'GET', url: location })).statusCode).toBe(404);
  });

  it.each(['', '?digest=', '?digest=sha256:123', '?digest=foo'])('a PUT with digest query %j answers 400 DIGEST_INVALID', async (query) => {
    const location = await startSession();
    const put = await reg.app.inject({ method: 'PUT', url: `${location}${query}`, headers: OCTET, payload: 'data' });
    expect(put.statusCode).toBe(400);
    expect(errorCode(put)).toBe('DIGEST_INVALID');
  });

  it('accepts sha512 digests', async () => {
    const data = Buffer.from('sha512 content');
    const digest = digestOf(data, 'sha512');
    const location = await startSession();
    await reg.app.inject({ method: 'PATCH', url: location, headers: OCTET, payload: data });
    const put = await reg.app.inject({ method: 'PUT', url: `${location}?digest=${digest}` });
    expect(put.statusCode).toBe(201);
    expect(put.headers['docker-content-digest']).toBe(digest);
    const get = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/${digest}` });
    expect(get.rawPayload.equals(data)).toBe(true);

    const mono = Buffer.from('sha512 monolithic');
    const post = await reg.app.inject({
      method: 'POST',
      url: `/v2/lib/app/blobs/uploads/?digest=${digestOf(mono, 'sha512')}`,
      headers: OCTET,
      payload: mono,
    });
    expect(post.statusCode).toBe(201);
  });

  it('DELETE cancels the session: 204, then 404 BLOB_UPLOAD_UNKNOWN, and its data is removed', async () => {
    const location = await startSession();
    await reg.app.inject({ method: 'PATCH', url: location, headers: OCTET, payload: 'partial' });
    const del = await reg.app.inject({ method: 'DELETE', url: location });
    expect(del.statusCode).toBe(204);
    for (const method of ['GET', 'PATCH', 'PUT', 'DELETE'] as const) {
      const res = await reg.app.inject({ method, url: `${location}?digest=${digestOf('partial')}`, headers: OCTET, payload: method === 'GET' || method === 'DELETE' ? undefined : 'x' });
      expect(res.statusCode, method).toBe(404);
      expect(errorCode(res)).toBe('BLOB_UPLOAD_UNKNOWN');
    }
    expect(await readdir(join(reg.root, 'uploads'))).toEqual([]);
  });

  it('an unknown or malformed upload id answers 404 BLOB_UPLOAD_UNKNOWN', async () => {
    for (const id of ['00000000-0000-0000-0000-000000000000', 'not-an-upload', 'a.b']) {
      const res = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/blobs/uploads/${id}` });
      expect(res.statusCode, id).toBe(404);
      expect(errorCode(res)).toBe('BLOB_UPLOAD_UNKNOWN');
    }
  });

  it('a session belongs to its repository', async () => {
    const location = await startSession('lib/app');
    const other = location.replace('/lib/app/', '/lib/other/');
    const res = await reg.app.inject({ method: 'PATCH', url: other, headers: OCTET, payload: 'x' });
    expect(res.statusCode).toBe(404);
    expect(errorCode(res)).toBe('BLOB_UPLOAD_UNKNOWN');
  });

  describe('single POST with digest', () => {
    it('answers 201 with Location and Docker-Content-Digest', async () => {
      const data = Buffer.from('monolithic');
      const digest = digestOf(data);
      const res = await reg.app.inject({ method: 'POST', url: `/v2/lib/app/blobs/uploads/?digest=${digest}`, headers: OCTET, payload: data });
      expect(res.statusCode).toBe(201);
      expect(res.headers.location).toBe(`/v2/lib/app/blobs/${digest}`);
      expect(res.headers['docker-content-digest']).toBe(digest);
    });

    it('with a wrong digest answers 400 DIGEST_INVALID and leaves no blob or upload behind', async () => {
      const wrong = digestOf('not this');
      const res = await reg.app.inject({ method: 'POST', url: `/v2/lib/app/blobs/uploads/?digest=${wrong}`, headers: OCTET, payload: 'this' });
      expect(res.statusCode).toBe(400);
      expect(errorCode(res)).toBe('DIGEST_INVALID');
      expect(await blobStatus('lib/app', wrong)).toBe(404);
      expect(await readdir(join(reg.root, 'uploads'))).toEqual([]);
      expect((await readdir(join(reg.root, 'blobs')).catch(() => []))).toEqual([]);
    });

    it('with a malformed digest answers 400 DIGEST_INVALID', async () => {
      const res = await reg.app.inject({ method: 'POST', url: '/v2/lib/app/blobs/uploads/?digest=sha256:nothex', headers: OCTET, payload: 'x' });
      expect(res.statusCode).toBe(400);
      expect(errorCode(res)).toBe('DIGEST_INVALID');
    });

    it('pushing content that already exists links it without rewriting it', async () => {
      const digest = await pushBlob(reg.app, 'one', 'shared');
      await pushBlob(reg.app, 'two', 'shared');
      expect(await blobStatus('two', digest)).toBe(200);
    });
  });

  describe('cross-repository mount', () => {
    it('mounts from a repository that has the blob: 201 with Location and digest', async () => {
      const digest = await pushBlob(reg.app, 'source/repo', 'layer bytes');
      const res = await reg.app.inject({ method: 'POST', url: `/v2/target/blobs/uploads/?mount=${digest}&from=source/repo` });
      expect(res.statusCode).toBe(201);
      expect(res.headers.location).toBe(`/v2/target/blobs/${digest}`);
      expect(res.headers['docker-content-digest']).toBe(digest);
      const get = await reg.app.inject({ method: 'GET', url: `/v2/target/blobs/${digest}` });
      expect(get.body).toBe('layer bytes');
    });

    it('mounts automatically without from, or from a repository that lacks it', async () => {
      const digest = await pushBlob(reg.app, 'source/repo', 'auto');
      const noFrom = await reg.app.inject({ method: 'POST', url: `/v2/t1/blobs/uploads/?mount=${digest}` });
      expect(noFrom.statusCode).toBe(201);
      const wrongFrom = await reg.app.inject({ method: 'POST', url: `/v2/t2/blobs/uploads/?mount=${digest}&from=elsewhere` });
      expect(wrongFrom.statusCode).toBe(201);
      expect(await blobStatus('t2', digest)).toBe(200);
    });

    it('falls back to an ordinary session when the registry lacks the blob', async () => {
      const res = await reg.app.inject({ method: 'POST', url: `/v2/target/blobs/uploads/?mount=${digestOf('nowhere')}&from=source` });
      expect(res.statusCode).toBe(202);
      expect(res.headers.location).toMatch(/^\/v2\/target\/blobs\/uploads\/[0-9a-f-]{36}$/);
    });

    it('rejects a malformed mount digest or from name with 400', async () => {
      const bad = await reg.app.inject({ method: 'POST', url: '/v2/target/blobs/uploads/?mount=sha256:xyz' });
      expect(bad.statusCode).toBe(400);
      expect(errorCode(bad)).toBe('DIGEST_INVALID');
      const badFrom = await reg.app.inject({ method: 'POST', url: `/v2/target/blobs/uploads/?mount=${digestOf('a')}&from=Bad..Name` });
      expect(badFrom.statusCode).toBe(400);
      expect(errorCode(badFrom)).toBe('NAME_INVALID');
    });
  });
});
