import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  DOCKER_LIST,
  DOCKER_MANIFEST,
  OCI_INDEX,
  OCI_MANIFEST,
  digestOf,
  errorCode,
  makeImage,
  manifestOf,
  pushBlob,
  putManifest,
  startRegistry,
  type BuiltManifest,
  type TestRegistry,
} from '../helpers.js';

describe('manifests', () => {
  let reg: TestRegistry;
  beforeEach(async () => {
    reg = await startRegistry();
  });
  afterEach(async () => {
    await reg.destroy();
  });

  const get = (url: string, headers: Record<string, string> = {}) => reg.app.inject({ method: 'GET', url, headers });

  it('PUT by tag answers 201 with Location and Docker-Content-Digest, and GET returns the bytes as pushed', async () => {
    const image = await makeImage(reg.app, 'lib/app');
    // Unusual formatting and unknown fields must survive byte for byte.
    const doc = JSON.parse(image.body.toString());
    const body = Buffer.from(JSON.stringify({ ...doc, newUnspecifiedField: null }, null, 3) + '\n');
    const m = { body, digest: digestOf(body), mediaType: OCI_MANIFEST };
    const put = await putManifest(reg.app, 'lib/app', 'v1', m);
    expect(put.statusCode).toBe(201);
    expect(put.headers.location).toBe(`/v2/lib/app/manifests/${m.digest}`);
    expect(put.headers['docker-content-digest']).toBe(m.digest);
    expect(put.headers['oci-subject']).toBeUndefined();

    for (const ref of ['v1', m.digest]) {
      const res = await get(`/v2/lib/app/manifests/${ref}`, { accept: OCI_MANIFEST });
      expect(res.statusCode).toBe(200);
      expect(res.rawPayload.equals(body)).toBe(true);
      expect(res.headers['content-type']).toBe(OCI_MANIFEST);
      expect(res.headers['docker-content-digest']).toBe(m.digest);
      expect(res.headers['content-length']).toBe(String(body.length));
    }
    const head = await reg.app.inject({ method: 'HEAD', url: '/v2/lib/app/manifests/v1' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe(String(body.length));
    expect(head.headers['docker-content-digest']).toBe(m.digest);

    // The store holds the bytes, a manifest link and the tag.
    const hex = m.digest.slice('sha256:'.length);
    expect((await readFile(join(reg.root, 'blobs/sha256', hex.slice(0, 2), hex))).equals(body)).toBe(true);
    expect((await readFile(join(reg.root, 'repositories/lib/app/_tags/v1'), 'utf8')).trim()).toBe(m.digest);
    await stat(join(reg.root, 'repositories/lib/app/_manifests/sha256', hex));
  });

  it('a manifest without a mediaType field takes the Content-Type it was pushed with', async () => {
    const image = await makeImage(reg.app, 'lib/app');
    const { mediaType: _omit, ...rest } = JSON.parse(image.body.toString());
    const m = manifestOf(rest, OCI_MANIFEST);
    expect((await putManifest(reg.app, 'lib/app', 'nomt', m)).statusCode).toBe(201);
    const res = await get('/v2/lib/app/manifests/nomt');
    expect(res.headers['content-type']).toBe(OCI_MANIFEST);
  });

  it('PUT by digest stores it untagged; a mismatched digest answers 400 DIGEST_INVALID', async () => {
    const image = await makeImage(reg.app, 'lib/app');
    expect((await putManifest(reg.app, 'lib/app', image.digest, image)).statusCode).toBe(201);
    const tags = await get('/v2/lib/app/tags/list');
    expect(tags.json()).toEqual({ name: 'lib/app', tags: [] });

    const bad = await putManifest(reg.app, 'lib/app', digestOf('other'), image);
    expect(bad.statusCode).toBe(400);
    expect(errorCode(bad)).toBe('DIGEST_INVALID');
  });

  it('PUT by digest with ?tag= applies several tags at once', async () => {
    const image = await makeImage(reg.app, 'lib/app');
    const res = await reg.app.inject({
      method: 'PUT',
      url: `/v2/lib/app/manifests/${image.digest}?tag=a&tag=b&tag=c`,
      headers: { 'content-type': OCI_MANIFEST },
      payload: image.body,
    });
    expect(res.statusCode).toBe(201);
    expect((await get('/v2/lib/app/tags/list')).json().tags).toEqual(['a', 'b', 'c']);
    const bad = await reg.app.inject({
      method: 'PUT',
      url: `/v2/lib/app/manifests/${image.digest}?tag=-bad`,
      headers: { 'content-type': OCI_MANIFEST },
      payload: image.body,
    });
    expect(bad.statusCode).toBe(400);
    expect(errorCode(bad)).toBe('MANIFEST_INVALID');
  });

  it('moving a tag points it at the new manifest; the old one stays reachable by digest', async () => {
    const one = await makeImage(reg.app, 'lib/app', { layer: 'one' });
    const two = await makeImage(reg.app, 'lib/app', { layer: 'two' });
    await putManifest(reg.app, 'lib/app', 'latest', one);
    await putManifest(reg.app, 'lib/app', 'latest', two);
    expect((await get('/v2/lib/app/manifests/latest')).headers['docker-content-digest']).toBe(two.digest);
    expect((await get(`/v2/lib/app/manifests/${one.digest}`)).statusCode).toBe(200);
  });

  it('concurrent moves of one tag leave the store and the index agreeing', async () => {
    const images: BuiltManifest[] = [];
    for (let i = 0; i < 4; i++) images.push(await makeImage(reg.app, 'lib/app', { layer: `race${i}` }));
    await Promise.all(Array.from({ length: 20 }, (_, i) => putManifest(reg.app, 'lib/app', 'race', images[i % 4]!)));
    const served = (await get('/v2/lib/app/manifests/race')).headers['docker-content-digest'];
    const stored = (await readFile(join(reg.root, 'repositories/lib/app/_tags/race'), 'utf8')).trim();
    expect(stored).toBe(served);
  });

  it('refuses manifests that reference blobs missing from the repository with MANIFEST_BLOB_UNKNOWN', async () => {
    const image = await makeImage(reg.app, 'lib/app');
    // The blobs exist, but in another repository.
    const elsewhere = await putManifest(reg.app, 'lib/other', 'v1', image);
    expect(elsewhere.statusCode).toBe(400);
    expect(errorCode(elsewhere)).toBe('MANIFEST_BLOB_UNKNOWN');

    const doc = JSON.parse(image.body.toString());
    doc.layers.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf('never pushed'), size: 12 });
    const missing = await putManifest(reg.app, 'lib/app', 'v1', manifestOf(doc, OCI_MANIFEST));
    expect(missing.statusCode).toBe(400);
    expect(errorCode(missing)).toBe('MANIFEST_BLOB_UNKNOWN');
    expect(JSON.stringify(missing.json())).toContain(digestOf('never pushed'));
    expect((await get('/v2/lib/app/manifests/v1')).statusCode).toBe(404);
  });

  it('refuses a descriptor whose size differs from the blob', async () => {
    const image = await makeImage(reg.app, 'lib/app');
    const doc = JSON.parse(image.body.toString());
    doc.layers[0].size += 1;
    const res = await putManifest(reg.app, 'lib/app', 'v1', manifestOf(doc, OCI_MANIFEST));
    expect(res.statusCode).toBe(400);
    expect(errorCode(res)).toBe('MANIFEST_BLOB_UNKNOWN');
  });

  it('accepts foreign layers that the registry does not hold', async () => {
    const image = await makeImage(reg.app, 'lib/app');
    const doc = JSON.parse(image.body.toString());
    doc.mediaType = DOCKER_MANIFEST;
    doc.config.mediaType = 'application/vnd.docker.container.image.v1+json';
    doc.layers.push({
      mediaType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
      digest: digestOf('windows base'),
      size: 1000,
      urls: ['https://example.com/layer'],
    });
    expect((await putManifest(reg.app, 'lib/app', 'win', manifestOf(doc, DOCKER_MANIFEST))).statusCode).toBe(201);
  });

  it('stores indexes whose children are in the repository, and refuses ones with missing children', async () => {
    const amd = await makeImage(reg.app, 'lib/app', { layer: 'amd64' });
    const arm = await makeImage(reg.app, 'lib/app', { layer: 'arm64' });
    await putManifest(reg.app, 'lib/app', amd.digest, amd);
    const index = manifestOf(
      {
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: OCI_MANIFEST, digest: amd.digest, size: amd.body.length, platform: { os: 'linux', architecture: 'amd64' } },
          { mediaType: OCI_MANIFEST, digest: arm.digest, size: arm.body.length, platform: { os: 'linux', architecture: 'arm64' } },
        ],
      },
      OCI_INDEX,
    );
    const missing = await putManifest(reg.app, 'lib/app', 'multi', index);
    expect(missing.statusCode).toBe(400);
    expect(errorCode(missing)).toBe('MANIFEST_BLOB_UNKNOWN');

    await putManifest(reg.app, 'lib/app', arm.digest, arm);
    const ok = await putManifest(reg.app, 'lib/app', 'multi', index);
    expect(ok.statusCode).toBe(201);
    const res = await get('/v2/lib/app/manifests/multi', { accept: `${OCI_INDEX}, ${OCI_MANIFEST}` });
    expect(res.headers['content-type']).toBe(OCI_INDEX);
    expect(res.rawPayload.equals(index.body)).toBe(true);
  });

  it('stores Docker schema 2 manifests and manifest lists with their media types', async () => {
    const config = Buffer.from('{"os":"linux","architecture":"amd64"}');
    const layer = Buffer.from('docker layer');
    const cfg = await pushBlob(reg.app, 'lib/docker', config);
    const lyr = await pushBlob(reg.app, 'lib/docker', layer);
    const image = manifestOf(
      {
        schemaVersion: 2,
        mediaType: DOCKER_MANIFEST,
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: cfg, size: config.length },
        layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: lyr, size: layer.length }],
      },
      DOCKER_MANIFEST,
    );
    expect((await putManifest(reg.app, 'lib/docker', 'img', image)).statusCode).toBe(201);
    const list = manifestOf(
      {
        schemaVersion: 2,
        mediaType: DOCKER_LIST,
        manifests: [
          { mediaType: DOCKER_MANIFEST, digest: image.digest, size: image.body.length, platform: { os: 'linux', architecture: 'amd64' } },
        ],
      },
      DOCKER_LIST,
    );
    expect((await putManifest(reg.app, 'lib/docker', 'list', list)).statusCode).toBe(201);
    const res = await get('/v2/lib/docker/manifests/list', { accept: `${DOCKER_LIST},${DOCKER_MANIFEST}` });
    expect(res.headers['content-type']).toBe(DOCKER_LIST);

    // A client that takes only image manifests gets the linux/amd64 one, as distribution does.
    const fallback = await get('/v2/lib/docker/manifests/list', { accept: DOCKER_MANIFEST });
    expect(fallback.statusCode).toBe(200);
    expect(fallback.headers['docker-content-digest']).toBe(image.digest);
  });

  it('answers 404 MANIFEST_UNKNOWN when the Accept header excludes the stored media type', async () => {
    const image = await makeImage(reg.app, 'lib/app');
    await putManifest(reg.app, 'lib/app', 'v1', image);
    const res = await get('/v2/lib/app/manifests/v1', { accept: DOCKER_MANIFEST });
    expect(res.statusCode).toBe(404);
    expect(errorCode(res)).toBe('MANIFEST_UNKNOWN');
    expect((await get('/v2/lib/app/manifests/v1', { accept: '*/*' })).statusCode).toBe(200);
    expect((await get('/v2/lib/app/manifests/v1', { accept: 'application/*' })).statusCode).toBe(200);
  });

  it('answers OCI-Subject when the manifest has a subject, even one not pushed yet', async () => {
    const image = await makeImage(reg.app, 'lib/app', {
      extra: { subject: { mediaType: OCI_MANIFEST, digest: digestOf('future subject'), size: 10 } },
    });
    const res = await putManifest(reg.app, 'lib/app', image.digest, image);
    expect(res.statusCode).toBe(201);
    expect(res.headers['oci-subject']).toBe(digestOf('future subject'));
  });

  it.each([
    ['not JSON', '{nope', OCI_MANIFEST],
    ['a JSON array', '[]', OCI_MANIFEST],
    ['schemaVersion 3', JSON.stringify({ schemaVersion: 3, mediaType: OCI_MANIFEST }), OCI_MANIFEST],
    ['a manifest without config', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }), OCI_MANIFEST],
    ['an index without manifests', JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX }), OCI_INDEX],
    ['a bad descriptor digest', JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'x/y', digest: 'sha256:1', size: 1 }, layers: [] }), OCI_MANIFEST],
    ['a Content-Type that contradicts mediaType', JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }), OCI_MANIFEST],
    ['an unsupported media type', JSON.stringify({ schemaVersion: 2, mediaType: 'application/x-custom', layers: [] }), 'application/x-custom'],
    ['Docker schema 1', JSON.stringify({ schemaVersion: 1, name: 'lib/app', tag: 'v1', fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+prettyjws'],
  ])('refuses %s with 400 MANIFEST_INVALID', async (_what, body, contentType) => {
    const res = await reg.app.inject({
      method: 'PUT',
      url: '/v2/lib/app/manifests/v1',
      headers: { 'content-type': contentType },
      payload: body,
    });
    expect(res.statusCode).toBe(400);
    expect(errorCode(res)).toBe('MANIFEST_INVALID');
    expect((await get('/v2/lib/app/manifests/v1')).statusCode).toBe(404);
  });

  it('says why a schema 1 manifest is refused', async () => {
    const res = await reg.app.inject({
      method: 'PUT',
      url: '/v2/lib/app/manifests/v1',
      headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+json' },
      payload: JSON.stringify({ schemaVersion: 1 }),
    });
    expect(res.json().errors[0].message).toMatch(/schema 1/i);
  });

  it('refuses a manifest over 4 MiB with 413', async () => {
    const big = JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], annotations: { pad: 'x'.repeat(4 * 1024 * 1024) } });
    const res = await reg.app.inject({ method: 'PUT', url: '/v2/lib/app/manifests/big', headers: { 'content-type': OCI_INDEX }, payload: big });
    expect(res.statusCode).toBe(413);
    expect(errorCode(res)).toBe('MANIFEST_INVALID');
  });

  it('PUT with an invalid tag answers 400 MANIFEST_INVALID; GET and HEAD of one answer 404', async () => {
    const image = await makeImage(reg.app, 'lib/app');
    const put = await putManifest(reg.app, 'lib/app', '.INVALID_MANIFEST_NAME', image);
    expect(put.statusCode).toBe(400);
    expect(errorCode(put)).toBe('MANIFEST_INVALID');
    const res = await get('/v2/lib/app/manifests/.INVALID_MANIFEST_NAME');
    expect(res.statusCode).toBe(404);
    expect(errorCode(res)).toBe('MANIFEST_UNKNOWN');
    expect((await reg.app.inject({ method: 'HEAD', url: '/v2/lib/app/manifests/.INVALID_MANIFEST_NAME' })).statusCode).toBe(404);
  });

  it('unknown manifests answer 404 MANIFEST_UNKNOWN; malformed digests 400 DIGEST_INVALID', async () => {
    const unknownTag = await get('/v2/lib/app/manifests/nothing');
    expect(unknownTag.statusCode).toBe(404);
    expect(errorCode(unknownTag)).toBe('MANIFEST_UNKNOWN');
    const unknownDigest = await get(`/v2/lib/app/manifests/${digestOf('x')}`);
    expect(unknownDigest.statusCode).toBe(404);
    const bad = await get('/v2/lib/app/manifests/sha256:totallywrong');
    expect(bad.statusCode).toBe(400);
    expect(errorCode(bad)).toBe('DIGEST_INVALID');
  });

  describe('deletes', () => {
    it('DELETE by tag removes only the tag', async () => {
      const image = await makeImage(reg.app, 'lib/app');
      await putManifest(reg.app, 'lib/app', 'a', image);
      await putManifest(reg.app, 'lib/app', 'b', image);
      const res = await reg.app.inject({ method: 'DELETE', url: '/v2/lib/app/manifests/a' });
      expect(res.statusCode).toBe(202);
      expect((await get('/v2/lib/app/manifests/a')).statusCode).toBe(404);
      expect((await get('/v2/lib/app/manifests/b')).statusCode).toBe(200);
      expect((await get(`/v2/lib/app/manifests/${image.digest}`)).statusCode).toBe(200);
      expect((await get('/v2/lib/app/tags/list')).json().tags).toEqual(['b']);
      await expect(stat(join(reg.root, 'repositories/lib/app/_tags/a'))).rejects.toThrow();
    });

    it('DELETE by digest removes the manifest and every tag pointing at it', async () => {
      const image = await makeImage(reg.app, 'lib/app');
      const other = await makeImage(reg.app, 'lib/app', { layer: 'other' });
      await putManifest(reg.app, 'lib/app', 'a', image);
      await putManifest(reg.app, 'lib/app', 'b', image);
      await putManifest(reg.app, 'lib/app', 'c', other);
      const res = await reg.app.inject({ method: 'DELETE', url: `/v2/lib/app/manifests/${image.digest}` });
      expect(res.statusCode).toBe(202);
      expect((await get(`/v2/lib/app/manifests/${image.digest}`)).statusCode).toBe(404);
      expect((await get('/v2/lib/app/manifests/a')).statusCode).toBe(404);
      expect((await get('/v2/lib/app/tags/list')).json().tags).toEqual(['c']);
    });

    it('DELETE of something unknown answers 404 MANIFEST_UNKNOWN', async () => {
      for (const ref of ['nope', digestOf('nope')]) {
        const res = await reg.app.inject({ method: 'DELETE', url: `/v2/lib/app/manifests/${ref}` });
        expect(res.statusCode).toBe(404);
        expect(errorCode(res)).toBe('MANIFEST_UNKNOWN');
      }
    });
  });
});

describe('configuration switches', () => {
  it('with deletes disabled, DELETEs answer 405 UNSUPPORTED and change nothing', async () => {
    const reg = await startRegistry({ storage: { delete: { enabled: false } } });
    try {
      const image = await makeImage(reg.app, 'lib/app');
      await putManifest(reg.app, 'lib/app', 'v1', image);
      const blob = JSON.parse(image.body.toString()).layers[0].digest;
      for (const url of ['/v2/lib/app/manifests/v1', `/v2/lib/app/manifests/${image.digest}`, `/v2/lib/app/blobs/${blob}`]) {
        const res = await reg.app.inject({ method: 'DELETE', url });
        expect(res.statusCode, url).toBe(405);
        expect(errorCode(res)).toBe('UNSUPPORTED');
      }
      expect((await reg.app.inject({ method: 'GET', url: '/v2/lib/app/manifests/v1' })).statusCode).toBe(200);
    } finally {
      await reg.destroy();
    }
  });

  it('in read-only mode, pulls work and pushes answer 405 UNSUPPORTED', async () => {
    const writable = await startRegistry();
    const image = await makeImage(writable.app, 'lib/app');
    await putManifest(writable.app, 'lib/app', 'v1', image);
    await writable.close();
    const reg = await startRegistry({ storage: { maintenance: { readonly: { enabled: true } } } }, writable.root);
    try {
      expect((await reg.app.inject({ method: 'GET', url: '/v2/lib/app/manifests/v1' })).statusCode).toBe(200);
      const post = await reg.app.inject({ method: 'POST', url: '/v2/lib/app/blobs/uploads/' });
      expect(post.statusCode).toBe(405);
      expect(errorCode(post)).toBe('UNSUPPORTED');
      const put = await putManifest(reg.app, 'lib/app', 'v2', image);
      expect(put.statusCode).toBe(405);
    } finally {
      await reg.destroy();
    }
  });
});
