import type { LightMyRequestResponse } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  OCI_INDEX,
  OCI_MANIFEST,
  digestOf,
  errorCode,
  makeImage,
  manifestOf,
  pushBlob,
  putManifest,
  startRegistry,
  type TestRegistry,
} from '../helpers.js';

describe('tags and catalog', () => {
  let reg: TestRegistry;
  const tags = ['v1', 'v10', 'v2', 'Latest', 'a_b', 'a.b', 'z'];
  beforeEach(async () => {
    reg = await startRegistry();
    const image = await makeImage(reg.app, 'lib/app');
    await reg.app.inject({
      method: 'PUT',
      url: `/v2/lib/app/manifests/${image.digest}?${tags.map((t) => `tag=${t}`).join('&')}`,
      headers: { 'content-type': OCI_MANIFEST },
      payload: image.body,
    });
  });
  afterEach(async () => {
    await reg.destroy();
  });

  const sorted = [...tags].sort();
  const list = (query = '') => reg.app.inject({ method: 'GET', url: `/v2/lib/app/tags/list${query}` });

  it('lists every tag in lexical order', async () => {
    const res = await list();
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: 'lib/app', tags: sorted });
    expect(res.headers.link).toBeUndefined();
  });

  it('pages with n and last, with a Link while more remain', async () => {
    const first = await list('?n=3');
    expect(first.json().tags).toEqual(sorted.slice(0, 3));
    expect(first.headers.link).toBe(`</v2/lib/app/tags/list?n=3&last=${encodeURIComponent(sorted[2]!)}>; rel="next"`);

    const seen: string[] = [];
    let url: string | undefined = '/v2/lib/app/tags/list?n=3';
    for (let page = 0; url && page < 10; page++) {
      const res: LightMyRequestResponse = await reg.app.inject({ method: 'GET', url });
      seen.push(...res.json().tags);
      url = /^<([^>]+)>; rel="next"$/.exec((res.headers.link as string | undefined) ?? '')?.[1];
    }
    expect(seen).toEqual(sorted);
  });

  it('answers exactly n when more remain, and no Link on the last page', async () => {
    const res = await list(`?n=${tags.length}`);
    expect(res.json().tags).toHaveLength(tags.length);
    expect(res.headers.link).toBeUndefined();
  });

  it('last starts after the given tag, even one that does not exist', async () => {
    expect((await list('?last=v1')).json().tags).toEqual(sorted.filter((t) => t > 'v1'));
    expect((await list('?last=b')).json().tags).toEqual(sorted.filter((t) => t > 'b'));
    expect((await list('?last=zzz')).json().tags).toEqual([]);
  });

  it('n=0 answers an empty list without Link', async () => {
    const res = await list('?n=0');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ name: 'lib/app', tags: [] });
    expect(res.headers.link).toBeUndefined();
  });

  it.each(['-1', 'abc', '1.5'])('n=%s answers 400 UNSUPPORTED (an invalid parameter)', async (n) => {
    const res = await list(`?n=${n}`);
    expect(res.statusCode).toBe(400);
    expect(errorCode(res)).toBe('UNSUPPORTED');
  });

  it('an unknown repository answers 404 NAME_UNKNOWN, even with n=0', async () => {
    for (const q of ['', '?n=0']) {
      const res = await reg.app.inject({ method: 'GET', url: `/v2/not/there/tags/list${q}` });
      expect(res.statusCode).toBe(404);
      expect(errorCode(res)).toBe('NAME_UNKNOWN');
    }
  });

  it('follows every tag change: a new tag, a moved tag, a deleted tag, a deleted manifest', async () => {
    const tagsNow = async () => ({ all: (await list()).json().tags, page: (await list('?n=100')).json().tags });
    expect((await tagsNow()).all).toEqual(sorted); // listed once: held in memory from here

    const other = await makeImage(reg.app, 'lib/app', { layer: 'other' });
    expect((await putManifest(reg.app, 'lib/app', 'new', other)).statusCode).toBe(201);
    const withNew = [...sorted, 'new'].sort();
    expect(await tagsNow()).toEqual({ all: withNew, page: withNew });

    expect((await putManifest(reg.app, 'lib/app', 'v1', other)).statusCode).toBe(201); // moved: same list
    expect((await tagsNow()).all).toEqual(withNew);

    expect((await reg.app.inject({ method: 'DELETE', url: '/v2/lib/app/manifests/new' })).statusCode).toBe(202);
    expect((await tagsNow()).all).toEqual(sorted);

    // Deleting the manifest by digest takes the tags pointing at it (v1 now) with it.
    expect((await reg.app.inject({ method: 'DELETE', url: `/v2/lib/app/manifests/${other.digest}` })).statusCode).toBe(202);
    const withoutV1 = sorted.filter((t) => t !== 'v1');
    expect(await tagsNow()).toEqual({ all: withoutV1, page: withoutV1 });
  });

  it('the catalog lists repositories in order, with the same paging', async () => {
    for (const repo of ['b/one', 'a', 'c', 'b/two']) await pushBlob(reg.app, repo, 'x');
    const all = await reg.app.inject({ method: 'GET', url: '/v2/_catalog' });
    expect(all.json()).toEqual({ repositories: ['a', 'b/one', 'b/two', 'c', 'lib/app'] });
    const page = await reg.app.inject({ method: 'GET', url: '/v2/_catalog?n=2&last=a' });
    expect(page.json()).toEqual({ repositories: ['b/one', 'b/two'] });
    expect(page.headers.link).toBe('</v2/_catalog?n=2&last=b%2Ftwo>; rel="next"');
    const none = await reg.app.inject({ method: 'GET', url: '/v2/_catalog?n=0' });
    expect(none.json()).toEqual({ repositories: [] });
    expect(none.headers.link).toBeUndefined();
    const bad = await reg.app.inject({ method: 'GET', url: '/v2/_catalog?n=x' });
    expect(bad.statusCode).toBe(400);
  });
});

describe('referrers', () => {
  let reg: TestRegistry;
  beforeEach(async () => {
    reg = await startRegistry();
  });
  afterEach(async () => {
    await reg.destroy();
  });

  it('lists the manifests whose subject is the digest, with artifactType, size and annotations', async () => {
    const subject = await makeImage(reg.app, 'lib/app', { layer: 'subject' });
    await putManifest(reg.app, 'lib/app', 'v1', subject);
    const subjectDesc = { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.body.length };

    const sbom = await makeImage(reg.app, 'lib/app', {
      layer: 'sbom',
      extra: { artifactType: 'application/spdx+json', subject: subjectDesc, annotations: { 'org.example.kind': 'sbom' } },
      configMediaType: 'application/vnd.oci.empty.v1+json',
    });
    const sig = await makeImage(reg.app, 'lib/app', {
      layer: 'sig',
      extra: { subject: subjectDesc, annotations: { 'org.example.kind': 'signature' } },
      configMediaType: 'application/vnd.example.signature.config+json',
    });
    const idx = manifestOf({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [], subject: subjectDesc, artifactType: 'application/x-index-art' }, OCI_INDEX);
    for (const m of [sbom, sig, idx]) {
      const res = await putManifest(reg.app, 'lib/app', m.digest, m);
      expect(res.statusCode).toBe(201);
      expect(res.headers['oci-subject']).toBe(subject.digest);
    }

    const res = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/referrers/${subject.digest}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe(OCI_INDEX);
    expect(res.headers['oci-filters-applied']).toBeUndefined();
    const body = res.json();
    expect(body.schemaVersion).toBe(2);
    expect(body.mediaType).toBe(OCI_INDEX);
    const byDigest = new Map(body.manifests.map((d: { digest: string }) => [d.digest, d]));
    expect(byDigest.size).toBe(3);
    expect(byDigest.get(sbom.digest)).toEqual({
      mediaType: OCI_MANIFEST,
      digest: sbom.digest,
      size: sbom.body.length,
      artifactType: 'application/spdx+json',
      annotations: { 'org.example.kind': 'sbom' },
    });
    // Without artifactType, the config's media type stands in.
    expect(byDigest.get(sig.digest)).toMatchObject({ artifactType: 'application/vnd.example.signature.config+json' });
    expect(byDigest.get(idx.digest)).toEqual({
      mediaType: OCI_INDEX,
      digest: idx.digest,
      size: idx.body.length,
      artifactType: 'application/x-index-art',
    });

    const filtered = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/referrers/${subject.digest}?artifactType=application/spdx%2Bjson` });
    expect(filtered.headers['oci-filters-applied']).toBe('artifactType');
    expect(filtered.json().manifests.map((d: { digest: string }) => d.digest)).toEqual([sbom.digest]);

    // Deleting a referrer removes it from the list.
    await reg.app.inject({ method: 'DELETE', url: `/v2/lib/app/manifests/${sbom.digest}` });
    const after = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/referrers/${subject.digest}` });
    expect(after.json().manifests).toHaveLength(2);
  });

  it('pages with Link when the index would pass 4 MiB', async () => {
    const subject = { mediaType: OCI_MANIFEST, digest: digestOf('big subject'), size: 10 };
    const pushed: string[] = [];
    for (let i = 0; i < 3; i++) {
      // Annotations are copied into the referrers index: three of 1.5 MiB cannot fit in one page.
      const art = await makeImage(reg.app, 'lib/app', {
        layer: `big${i}`,
        extra: { subject, annotations: { pad: String(i).repeat(1536 * 1024) } },
      });
      expect((await putManifest(reg.app, 'lib/app', art.digest, art)).statusCode).toBe(201);
      pushed.push(art.digest);
    }
    const seen: string[] = [];
    let url: string | undefined = `/v2/lib/app/referrers/${subject.digest}`;
    let pages = 0;
    for (; url && pages < 5; pages++) {
      const res: LightMyRequestResponse = await reg.app.inject({ method: 'GET', url });
      expect(res.statusCode).toBe(200);
      expect(res.rawPayload.length).toBeLessThanOrEqual(4 * 1024 * 1024);
      seen.push(...res.json().manifests.map((d: { digest: string }) => d.digest));
      url = /^<([^>]+)>; rel="next"$/.exec((res.headers.link as string | undefined) ?? '')?.[1];
    }
    expect(pages).toBe(2);
    expect(seen.sort()).toEqual(pushed.sort());
  });

  it('lists referrers of a subject that was never pushed', async () => {
    const missing = { mediaType: OCI_MANIFEST, digest: digestOf('absent'), size: 5 };
    const art = await makeImage(reg.app, 'lib/app', { extra: { subject: missing } });
    await putManifest(reg.app, 'lib/app', art.digest, art);
    const res = await reg.app.inject({ method: 'GET', url: `/v2/lib/app/referrers/${missing.digest}` });
    expect(res.json().manifests).toHaveLength(1);
  });

  it('answers an empty index for a digest without referrers, even in an unknown repository', async () => {
    for (const repo of ['lib/app', 'never/pushed']) {
      const res = await reg.app.inject({ method: 'GET', url: `/v2/${repo}/referrers/${digestOf('none')}` });
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-type']).toBe(OCI_INDEX);
      expect(res.json()).toEqual({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
    }
  });

  it('answers 400 DIGEST_INVALID for a malformed digest', async () => {
    const res = await reg.app.inject({ method: 'GET', url: '/v2/lib/app/referrers/sha256:nope' });
    expect(res.statusCode).toBe(400);
    expect(errorCode(res)).toBe('DIGEST_INVALID');
  });
});

describe('repository names', () => {
  let reg: TestRegistry;
  beforeEach(async () => {
    reg = await startRegistry();
  });
  afterEach(async () => {
    await reg.destroy();
  });

  const d = digestOf('x');
  it.each([
    ['upper case', 'Lib/App'],
    ['a leading separator', '-lib/app'],
    ['a trailing separator', 'lib/app_'],
    ['three underscores', 'lib___app'],
    ['an empty component', 'lib//app'],
    ['over 256 characters', 'a'.repeat(257)],
    ['a colon', 'lib:app'],
  ])('a name with %s answers 400 NAME_INVALID everywhere', async (_what, name) => {
    const requests = [
      { method: 'GET', url: `/v2/${name}/tags/list` },
      { method: 'GET', url: `/v2/${name}/manifests/latest` },
      { method: 'PUT', url: `/v2/${name}/manifests/latest` },
      { method: 'GET', url: `/v2/${name}/blobs/${d}` },
      { method: 'POST', url: `/v2/${name}/blobs/uploads/` },
      { method: 'GET', url: `/v2/${name}/referrers/${d}` },
    ] as const;
    for (const r of requests) {
      const res = await reg.app.inject({ ...r, headers: { 'content-type': OCI_MANIFEST }, payload: r.method === 'PUT' ? '{}' : undefined });
      expect(res.statusCode, `${r.method} ${r.url}`).toBe(400);
      expect(errorCode(res)).toBe('NAME_INVALID');
    }
    expect((await reg.app.inject({ method: 'GET', url: '/v2/_catalog' })).json().repositories).toEqual([]);
  });

  it('accepts names at the limits of the grammar', async () => {
    for (const name of ['a'.repeat(256), 'a.b_c__d---e/f0', 'x/y/z/w']) {
      const res = await reg.app.inject({ method: 'POST', url: `/v2/${name}/blobs/uploads/` });
      expect(res.statusCode, name).toBe(202);
    }
  });
});
