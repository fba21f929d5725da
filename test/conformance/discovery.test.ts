// Content discovery: the tags list (with n, last and Link) and the referrers API.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  OCI_EMPTY,
  OCI_INDEX,
  OCI_MANIFEST,
  descriptor,
  expectError,
  header,
  json,
  mediaTypeOf,
  pushBlob,
  pushImage,
  pushImageBlobs,
  putManifest,
  repoName,
  request,
  sha256,
  unknownDigest,
  type Image,
} from './support.js';

interface TagList {
  name: string;
  tags: string[] | null;
}

interface Index {
  schemaVersion: number;
  mediaType?: string;
  manifests: Array<{ mediaType: string; digest: string; size: number; artifactType?: string; annotations?: Record<string, string> }>;
}

const MAX_PAGES = 50;

/** The `<url>` of a `Link: <url>; rel="next"` header, or undefined. */
function nextLink(value: string | null): string | undefined {
  if (value === null) return undefined;
  const m = /<([^>]+)>\s*;\s*rel="?next"?/i.exec(value);
  return m?.[1];
}

describe('content discovery: tags list', () => {
  const repo = repoName('tags');
  // Deliberately pushed out of order; no mixed case (the spec's "lexical" is ambiguous there).
  const tags = ['v10', 'alpha', 'v2', '1.0', 'beta_2', 'v1', 'latest', '0-rc'];
  const sorted = [...tags].sort();

  beforeAll(async () => {
    const image = await pushImage(repo, tags[0]!);
    for (const tag of tags.slice(1)) {
      const res = await putManifest(repo, tag, image.manifest);
      expect(res.status).toBe(201);
    }
  });

  it('tags: GET /tags/list answers 200 with {name, tags} holding every tag in lexical order', async () => {
    const res = await request('GET', `/v2/${repo}/tags/list`);
    expect(res.status).toBe(200);
    const body = json<TagList>(res);
    expect(body.name).toBe(repo);
    expect(body.tags).toEqual(sorted);
  });

  it('tags: ?n=<int> answers the first <int> tags in order (fewer only together with a Link header)', async () => {
    const res = await request('GET', `/v2/${repo}/tags/list?n=3`);
    expect(res.status).toBe(200);
    const got = json<TagList>(res).tags ?? [];
    if (got.length < 3) expect(nextLink(header(res, 'link'))).toBeTruthy();
    expect(got.length).toBeLessThanOrEqual(3);
    expect(got).toEqual(sorted.slice(0, got.length));
    expect(got.length).toBeGreaterThan(0);
  });

  it('tags: ?n=0 answers an empty list and no Link header', async () => {
    const res = await request('GET', `/v2/${repo}/tags/list?n=0`);
    expect(res.status).toBe(200);
    expect(json<TagList>(res).tags ?? []).toEqual([]);
    expect(header(res, 'link')).toBeNull();
  });

  it('tags: ?last=<tag> without n answers tags after <tag>, the next ones in lexical order', async () => {
    // "When using the `last` query parameter, the `n` parameter is OPTIONAL." The rule that fewer
    // results come only with a Link header is tied to `n`, so without `n` only order and position count.
    const last = sorted[2]!;
    const res = await request('GET', `/v2/${repo}/tags/list?last=${encodeURIComponent(last)}`);
    expect(res.status).toBe(200);
    const got = json<TagList>(res).tags ?? [];
    for (const t of got) expect(t > last, `${t} is not after ${last}`).toBe(true);
    expect(got).toEqual(sorted.slice(3, 3 + got.length));
  });

  it('tags: ?n=<int>&last=<tag> answers up to <int> tags after <tag>', async () => {
    const res = await request('GET', `/v2/${repo}/tags/list?n=2&last=${encodeURIComponent(sorted[1]!)}`);
    expect(res.status).toBe(200);
    const got = json<TagList>(res).tags ?? [];
    if (got.length < 2) expect(nextLink(header(res, 'link'))).toBeTruthy();
    expect(got).toEqual(sorted.slice(2, 2 + got.length));
    expect(got.length).toBeGreaterThan(0);
  });

  it('tags: paging with n (following Link rel="next" where given, else last=) visits every tag once, in order', async () => {
    const seen: string[] = [];
    let next: string | undefined = `/v2/${repo}/tags/list?n=3`;
    for (let page = 0; next !== undefined && page < MAX_PAGES; page++) {
      const res = await request('GET', next);
      expect(res.status).toBe(200);
      const got = json<TagList>(res).tags ?? [];
      expect(got.length).toBeLessThanOrEqual(3);
      seen.push(...got);
      const link = header(res, 'link');
      if (link !== null) {
        expect(link).toMatch(/^<[^>]+>\s*;\s*rel="next"$/);
        next = nextLink(link);
      } else if (got.length === 3 && seen.length < sorted.length) {
        next = `/v2/${repo}/tags/list?n=3&last=${encodeURIComponent(got[got.length - 1]!)}`;
      } else {
        next = undefined;
      }
    }
    expect(seen).toEqual(sorted);
  });

  it('tags: the list of a repository that does not exist answers 404 NAME_UNKNOWN', async () => {
    const res = await request('GET', `/v2/${repoName('no-such-repo')}/tags/list`);
    expectError(res, 404, 'NAME_UNKNOWN');
  });
});

describe('content discovery: referrers', () => {
  const repo = repoName('referrers');
  const SBOM = 'application/vnd.example.sbom.v1';
  const SIG = 'application/vnd.example.signature.v1';
  const CONFIG_TYPE = 'application/vnd.example.config.v1+json';
  let subject: Image;
  let sbom: Buffer;
  let signature: Buffer;
  let referrerIndex: Buffer;

  beforeAll(async () => {
    subject = await pushImage(repo, 'subject');
    const empty = Buffer.from('{}');
    await pushBlob(repo, empty);
    const typedConfig = Buffer.from(JSON.stringify({ kind: 'conformance' }));
    await pushBlob(repo, typedConfig);
    const subjectDesc = descriptor(OCI_MANIFEST, subject.manifest);

    // An artifact with artifactType and annotations.
    sbom = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: SBOM,
        config: descriptor(OCI_EMPTY, empty),
        layers: [descriptor(OCI_EMPTY, empty)],
        subject: subjectDesc,
        annotations: { 'org.example.format': 'json', 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' },
      }),
    );
    // No artifactType: the referrers entry takes the config's media type.
    signature = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config: descriptor(CONFIG_TYPE, typedConfig),
        layers: [descriptor(OCI_EMPTY, empty)],
        subject: subjectDesc,
        annotations: { 'org.example.signer': 'conformance' },
      }),
    );
    // An index referrer without artifactType: its entry has no artifactType.
    referrerIndex = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [descriptor(OCI_MANIFEST, subject.manifest)],
        subject: subjectDesc,
        annotations: { 'org.example.kind': 'index-referrer' },
      }),
    );
    for (const [body, type] of [
      [sbom, OCI_MANIFEST],
      [signature, OCI_MANIFEST],
      [referrerIndex, OCI_INDEX],
    ] as const) {
      const res = await putManifest(repo, sha256(body), body, type);
      expect(res.status, res.body.toString('utf8')).toBe(201);
    }
  });

  it('referrers: a digest with no referrers answers 200 with an empty image index (not 404)', async () => {
    const res = await request('GET', `/v2/${repo}/referrers/${unknownDigest()}`);
    expect(res.status).toBe(200);
    expect(mediaTypeOf(res)).toBe(OCI_INDEX);
    const body = json<Index>(res);
    expect(body.schemaVersion).toBe(2);
    expect(body.mediaType).toBe(OCI_INDEX);
    expect(body.manifests).toEqual([]);
  });

  it('referrers: a repository that does not exist answers 200 with an empty image index (MUST NOT 404)', async () => {
    // "If the registry supports the referrers API, the registry MUST NOT return a `404 Not Found` to a
    // referrers API requests." (The sentence before it, "Assuming a repository is found, this request
    // MUST return a `200 OK`", does not license a 404 for a registry that has the API.)
    const res = await request('GET', `/v2/${repoName('referrers-never-pushed')}/referrers/${unknownDigest()}`);
    expect(res.status).toBe(200);
    expect(mediaTypeOf(res)).toBe(OCI_INDEX);
    const body = json<Index>(res);
    expect(body.schemaVersion).toBe(2);
    expect(body.manifests).toEqual([]);
  });

  it('referrers: the list answers 200 with Content-Type application/vnd.oci.image.index.v1+json and one descriptor per referrer', async () => {
    const res = await request('GET', `/v2/${repo}/referrers/${subject.digest}`);
    expect(res.status).toBe(200);
    expect(header(res, 'content-type')).toBe(OCI_INDEX);
    const body = json<Index>(res);
    expect(body.schemaVersion).toBe(2);
    expect(body.mediaType).toBe(OCI_INDEX);
    const digests = body.manifests.map((m) => m.digest).sort();
    expect(digests).toEqual([sha256(sbom), sha256(signature), sha256(referrerIndex)].sort());
    for (const m of body.manifests) {
      const bytes = m.digest === sha256(sbom) ? sbom : m.digest === sha256(signature) ? signature : referrerIndex;
      expect(m.size).toBe(bytes.length);
      expect(m.mediaType).toBe(bytes === referrerIndex ? OCI_INDEX : OCI_MANIFEST);
    }
  });

  it("referrers: a descriptor carries the manifest's artifactType and all its annotations", async () => {
    const res = await request('GET', `/v2/${repo}/referrers/${subject.digest}`);
    expect(res.status).toBe(200);
    const entry = json<Index>(res).manifests.find((m) => m.digest === sha256(sbom));
    expect(entry?.artifactType).toBe(SBOM);
    expect(entry?.annotations).toEqual({ 'org.example.format': 'json', 'org.opencontainers.image.created': '2026-01-01T00:00:00Z' });
  });

  it("referrers: a manifest without artifactType is listed with the config's media type as artifactType", async () => {
    const res = await request('GET', `/v2/${repo}/referrers/${subject.digest}`);
    expect(res.status).toBe(200);
    const entry = json<Index>(res).manifests.find((m) => m.digest === sha256(signature));
    expect(entry?.artifactType).toBe(CONFIG_TYPE);
    expect(entry?.annotations).toEqual({ 'org.example.signer': 'conformance' });
  });

  it('referrers: an index without artifactType is listed without artifactType, with its annotations', async () => {
    const res = await request('GET', `/v2/${repo}/referrers/${subject.digest}`);
    expect(res.status).toBe(200);
    const entry = json<Index>(res).manifests.find((m) => m.digest === sha256(referrerIndex));
    expect(entry).toBeDefined();
    expect(entry).not.toHaveProperty('artifactType');
    expect(entry?.annotations).toEqual({ 'org.example.kind': 'index-referrer' });
  });

  it('referrers: (SHOULD) ?artifactType= filters the list, and the answer says OCI-Filters-Applied: artifactType', async () => {
    const res = await request('GET', `/v2/${repo}/referrers/${subject.digest}?artifactType=${encodeURIComponent(SBOM)}`);
    expect(res.status).toBe(200);
    expect(mediaTypeOf(res)).toBe(OCI_INDEX);
    expect(header(res, 'oci-filters-applied')).toBe('artifactType');
    expect(json<Index>(res).manifests.map((m) => m.digest)).toEqual([sha256(sbom)]);
  });

  it('referrers: a referrer pushed before its subject is listed', async () => {
    const later = await pushImageBlobs(repo);
    const empty = Buffer.from('{}');
    const early = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: SIG,
        config: descriptor(OCI_EMPTY, empty),
        layers: [descriptor(OCI_EMPTY, empty)],
        subject: { mediaType: OCI_MANIFEST, digest: later.digest, size: later.manifest.length },
      }),
    );
    const put = await putManifest(repo, sha256(early), early);
    expect(put.status).toBe(201);
    const subjectPut = await putManifest(repo, 'later-subject', later.manifest);
    expect(subjectPut.status).toBe(201);
    const res = await request('GET', `/v2/${repo}/referrers/${later.digest}`);
    expect(res.status).toBe(200);
    const body = json<Index>(res);
    expect(body.manifests.map((m) => m.digest)).toEqual([sha256(early)]);
    expect(body.manifests[0]?.artifactType).toBe(SIG);
  });

  it('referrers: a referrer pushed to another repository is not listed for this one', async () => {
    const other = repoName('referrers-elsewhere');
    const empty = Buffer.from('{}');
    await pushBlob(other, empty);
    const foreign = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.elsewhere.v1',
        config: descriptor(OCI_EMPTY, empty),
        layers: [descriptor(OCI_EMPTY, empty)],
        subject: descriptor(OCI_MANIFEST, subject.manifest),
      }),
    );
    expect((await putManifest(other, sha256(foreign), foreign)).status).toBe(201);
    const here = await request('GET', `/v2/${repo}/referrers/${subject.digest}`);
    expect(here.status).toBe(200);
    expect(json<Index>(here).manifests.map((m) => m.digest)).not.toContain(sha256(foreign));
    const there = await request('GET', `/v2/${other}/referrers/${subject.digest}`);
    expect(there.status).toBe(200);
    expect(json<Index>(there).manifests.map((m) => m.digest)).toEqual([sha256(foreign)]);
  });

  it('referrers: a malformed digest answers 400', async () => {
    const res = await request('GET', `/v2/${repo}/referrers/sha256:not-hex`);
    expect(res.status).toBe(400);
  });
});
