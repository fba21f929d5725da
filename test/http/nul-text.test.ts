// Text with a NUL character, which no name, tag or media type the registry holds contains (and which
// PostgreSQL refuses in text): a manifest carrying one is refused before anything is written, and
// values compared against the index (`last`, upload ids) are taken as harmless. Runs over SQLite, and
// over PostgreSQL with OCIREG_TEST_INDEX=postgres.
import { afterEach, describe, expect, it } from 'vitest';
import { errorCode, makeImage, putManifest, startRegistry, type TestRegistry } from './../helpers.js';

let reg: TestRegistry | undefined;
afterEach(async () => {
  await reg?.destroy();
  reg = undefined;
});

describe('NUL characters', () => {
  it('refuses a manifest whose artifact type holds a NUL, and writes nothing of it', async () => {
    reg = await startRegistry();
    const image = await makeImage(reg.app, 'nul/app', { configMediaType: 'application/vnd.example\u0000config' });
    const res = await putManifest(reg.app, 'nul/app', 'v1', image);
    expect(res.statusCode).toBe(400);
    expect(errorCode(res)).toBe('MANIFEST_INVALID');
    const tags = await reg.app.inject({ method: 'GET', url: '/v2/nul/app/tags/list' });
    expect(tags.json()).toEqual({ name: 'nul/app', tags: [] });
    expect((await reg.app.inject({ method: 'HEAD', url: `/v2/nul/app/manifests/${image.digest}` })).statusCode).toBe(404);
    // The registry goes on: the same image with a plain type is taken.
    const plain = await makeImage(reg.app, 'nul/app');
    expect((await putManifest(reg.app, 'nul/app', 'v1', plain)).statusCode).toBe(201);
  });

  it('takes a NUL in last as the end of the value, and an upload id with one as unknown', async () => {
    reg = await startRegistry();
    for (const repo of ['a/one', 'a/two', 'b/three']) await makeImage(reg.app, repo);
    const page = await reg.app.inject({ method: 'GET', url: '/v2/_catalog?last=a%2Fone%00zz' });
    expect(page.statusCode).toBe(200);
    expect(page.json()).toEqual({ repositories: ['a/two', 'b/three'] });
    const upload = await reg.app.inject({ method: 'GET', url: '/v2/a/one/blobs/uploads/x%00y' });
    expect(upload.statusCode).toBe(404);
    expect(errorCode(upload)).toBe('BLOB_UPLOAD_UNKNOWN');
  });
});
