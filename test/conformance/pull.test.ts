// Pull workflow: /v2/, manifests and blobs by tag and digest, HEAD, Range, and 404s.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  OCI_MANIFEST,
  expectError,
  fetchWithAuth,
  header,
  mediaTypeOf,
  pushImage,
  rawHead,
  repoName,
  request,
  sha256,
  unknownDigest,
  type Image,
} from './support.js';

const repo = repoName('pull');
const tag = 'v1';
let image: Image;

beforeAll(async () => {
  image = await pushImage(repo, tag);
});

describe('base', () => {
  it('base: GET /v2/ answers 200', async () => {
    const res = await request('GET', '/v2/');
    expect(res.status).toBe(200);
  });
});

describe('pull manifests', () => {
  it('pull: GET manifest by tag answers 200 with the pushed bytes', async () => {
    const res = await request('GET', `/v2/${repo}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
    expect(res.status).toBe(200);
    expect(res.body.equals(image.manifest)).toBe(true);
  });

  it('pull: GET manifest by digest answers 200 with the pushed bytes', async () => {
    const res = await request('GET', `/v2/${repo}/manifests/${image.digest}`, { headers: { Accept: OCI_MANIFEST } });
    expect(res.status).toBe(200);
    expect(res.body.equals(image.manifest)).toBe(true);
    expect(sha256(res.body)).toBe(image.digest);
  });

  it('pull: (SHOULD) manifest Content-Type is the media type it was pushed with', async () => {
    for (const ref of [tag, image.digest]) {
      const res = await request('GET', `/v2/${repo}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      expect(res.status).toBe(200);
      expect(mediaTypeOf(res)).toBe(OCI_MANIFEST);
    }
  });

  it('pull: [main] manifest GET by tag and by digest carries Docker-Content-Digest of the returned bytes', async () => {
    for (const ref of [tag, image.digest]) {
      const res = await request('GET', `/v2/${repo}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      expect(res.status).toBe(200);
      expect(header(res, 'docker-content-digest')).toBe(sha256(res.body));
    }
  });

  it('pull: HEAD manifest by tag and by digest answers 200 with no body (raw socket: nothing follows the headers)', async () => {
    for (const ref of [tag, image.digest]) {
      const res = await rawHead(`/v2/${repo}/manifests/${ref}`, { Accept: OCI_MANIFEST });
      expect(res.status).toBe(200);
      expect(res.afterHeaders.toString('latin1')).toBe('');
    }
  });

  it('pull: [main] HEAD manifest carries Docker-Content-Digest and the real Content-Length', async () => {
    for (const ref of [tag, image.digest]) {
      const res = await request('HEAD', `/v2/${repo}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      expect(res.status).toBe(200);
      expect(header(res, 'docker-content-digest')).toBe(image.digest);
      expect(header(res, 'content-length')).toBe(String(image.manifest.length));
    }
  });

  it('pull: GET manifest of an unknown tag answers 404 MANIFEST_UNKNOWN', async () => {
    const res = await request('GET', `/v2/${repo}/manifests/no-such-tag`, { headers: { Accept: OCI_MANIFEST } });
    expectError(res, 404, 'MANIFEST_UNKNOWN');
  });

  it('pull: GET manifest of an unknown digest answers 404 MANIFEST_UNKNOWN', async () => {
    const res = await request('GET', `/v2/${repo}/manifests/${unknownDigest()}`, { headers: { Accept: OCI_MANIFEST } });
    expectError(res, 404, 'MANIFEST_UNKNOWN');
  });

  it('pull: HEAD manifest of an unknown tag or digest answers 404', async () => {
    for (const ref of ['no-such-tag', unknownDigest()]) {
      const res = await request('HEAD', `/v2/${repo}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      expect(res.status).toBe(404);
    }
  });

  it('pull: GET manifest in a repository that does not exist answers 404 (NAME_UNKNOWN or MANIFEST_UNKNOWN)', async () => {
    const res = await request('GET', `/v2/${repoName('never-pushed')}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
    expectError(res, 404, ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN']);
  });
});

describe('pull blobs', () => {
  it('pull: GET blob answers 200 with the blob bytes', async () => {
    for (const blob of [image.config, image.layer]) {
      const res = await request('GET', `/v2/${repo}/blobs/${sha256(blob)}`);
      expect(res.status).toBe(200);
      expect(res.body.equals(blob)).toBe(true);
    }
  });

  it('pull: [main] blob GET carries Docker-Content-Digest matching the body', async () => {
    // A registry may send the GET on to its object store (307); its own answer carries the header then.
    const first = await fetchWithAuth('GET', `/v2/${repo}/blobs/${sha256(image.layer)}`, { redirect: 'manual', timeoutMs: 30_000 });
    await first.arrayBuffer();
    const res = await request('GET', `/v2/${repo}/blobs/${sha256(image.layer)}`);
    expect(res.status).toBe(200);
    expect(first.headers.get('docker-content-digest')).toBe(sha256(res.body));
    expect(res.body.equals(image.layer)).toBe(true);
  });

  it('pull: HEAD blob answers 200 with no body (raw socket: nothing follows the headers)', async () => {
    const res = await rawHead(`/v2/${repo}/blobs/${sha256(image.layer)}`);
    expect(res.status).toBe(200);
    expect(res.afterHeaders.length, res.afterHeaders.toString('latin1').slice(0, 100)).toBe(0);
  });

  it('pull: (SHOULD; [main] MUST) HEAD blob carries Content-Length of the blob and its Docker-Content-Digest', async () => {
    const res = await request('HEAD', `/v2/${repo}/blobs/${sha256(image.layer)}`);
    expect(res.status).toBe(200);
    expect(header(res, 'content-length')).toBe(String(image.layer.length));
    expect(header(res, 'docker-content-digest')).toBe(sha256(image.layer));
  });

  it('pull: GET blob of an unknown digest answers 404 BLOB_UNKNOWN', async () => {
    const res = await request('GET', `/v2/${repo}/blobs/${unknownDigest()}`);
    expectError(res, 404, 'BLOB_UNKNOWN');
  });

  it('pull: HEAD blob of an unknown digest answers 404', async () => {
    const res = await request('HEAD', `/v2/${repo}/blobs/${unknownDigest()}`);
    expect(res.status).toBe(404);
  });

  it('pull: a blob pushed to another repository is not served from this one (404)', async () => {
    const other = await pushImage(repoName('pull-other'), 'x');
    const res = await request('GET', `/v2/${repo}/blobs/${sha256(other.layer)}`);
    expect(res.status).toBe(404);
  });

  it('pull: (SHOULD) GET blob with Range answers 206 with Content-Range and the requested bytes', async () => {
    const res = await request('GET', `/v2/${repo}/blobs/${sha256(image.layer)}`, { headers: { Range: 'bytes=10-99' } });
    expect(res.status).toBe(206);
    expect(header(res, 'content-range')).toBe(`bytes 10-99/${image.layer.length}`);
    expect(res.body.equals(image.layer.subarray(10, 100))).toBe(true);
  });

  it('pull: (SHOULD) GET blob with an open-ended Range answers 206 with the rest of the blob', async () => {
    const start = image.layer.length - 100;
    const res = await request('GET', `/v2/${repo}/blobs/${sha256(image.layer)}`, { headers: { Range: `bytes=${start}-` } });
    expect(res.status).toBe(206);
    expect(header(res, 'content-range')).toBe(`bytes ${start}-${image.layer.length - 1}/${image.layer.length}`);
    expect(res.body.equals(image.layer.subarray(start))).toBe(true);
  });

  it('pull: (SHOULD) GET blob with a Range beyond its end answers 416', async () => {
    const size = image.layer.length;
    const res = await request('GET', `/v2/${repo}/blobs/${sha256(image.layer)}`, { headers: { Range: `bytes=${size + 10}-${size + 20}` } });
    expect(res.status).toBe(416);
  });
});
