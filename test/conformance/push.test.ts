// Push workflow: monolithic and chunked blob uploads, upload status, mounts, manifests.
import { createHash, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { authMode } from './client-auth.js';
import {
  OCI_CONFIG,
  OCI_EMPTY,
  OCI_INDEX,
  OCI_MANIFEST,
  ANY_4XX,
  descriptor,
  expectClientError,
  expectError,
  header,
  imageManifest,
  mediaTypeOf,
  pushBlob,
  pushImage,
  pushImageBlobs,
  putManifest,
  randomBlob,
  repoName,
  request,
  sha256,
  startUpload,
  target,
  unknownDigest,
  withQuery,
} from './support.js';

const repo = repoName('push');
/** Where the spec allows two answers, our own registry is held to the one it gives. */
const own = target.own;

/**
 * PUTs a manifest that refers to content the registry does not have. The spec lets a registry
 * accept it (then it must be pullable as pushed) or reject it: "When a manifest is rejected for
 * this reason, it MUST result in one or more `MANIFEST_BLOB_UNKNOWN` errors" (and it is not stored).
 * Ours rejects it with 400.
 */
async function expectRejectedOrKept(repository: string, tag: string, body: Buffer, mediaType: string): Promise<void> {
  const res = await putManifest(repository, tag, body, mediaType);
  if (own) expect(res.status).toBe(400);
  const pulled = await request('GET', `/v2/${repository}/manifests/${tag}`, { headers: { Accept: mediaType } });
  if (res.status === 201) {
    expect(pulled.status).toBe(200);
    expect(pulled.body.equals(body)).toBe(true);
  } else {
    expectError(res, ANY_4XX, 'MANIFEST_BLOB_UNKNOWN');
    expect(pulled.status).toBe(404);
  }
}
const OCTET = { 'Content-Type': 'application/octet-stream' };

async function expectBlobStored(repository: string, data: Buffer): Promise<void> {
  const res = await request('GET', `/v2/${repository}/blobs/${sha256(data)}`);
  expect(res.status).toBe(200);
  expect(res.body.equals(data)).toBe(true);
}

async function expectBlobAbsent(repository: string, digest: string): Promise<void> {
  const res = await request('HEAD', `/v2/${repository}/blobs/${digest}`);
  expect(res.status).toBe(404);
}

/**
 * An unknown, cancelled or completed session: 1.1 gives 404 as the failure status of end-5, end-6 and
 * end-13 but names no error code for it, so the code is checked only against ours.
 */
function expectSessionUnknown(res: Awaited<ReturnType<typeof request>>): void {
  if (own) expectError(res, 404, 'BLOB_UPLOAD_UNKNOWN');
  else expect(res.status, res.body.toString('utf8')).toBe(404);
}

function patchChunk(location: string, chunk: Buffer, start: number): ReturnType<typeof request> {
  return request('PATCH', location, {
    headers: { ...OCTET, 'Content-Range': `${start}-${start + chunk.length - 1}` },
    body: chunk,
  });
}

describe('push: monolithic blob upload', () => {
  it('push: POST /blobs/uploads/ answers 202 with a Location for the session', async () => {
    const res = await request('POST', `/v2/${repo}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
    expect(res.status).toBe(202);
    const location = header(res, 'location');
    expect(location).toBeTruthy();
    // The session it names is live.
    const status = await request('GET', location!);
    expect(status.status).toBe(204);
  });

  it('push: (1.1 text; [main] asks only for a unique location) the session Location contains a UUID, different for each session', async () => {
    const uuid = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
    const a = await startUpload(repo);
    const b = await startUpload(repo);
    expect(a).toMatch(uuid);
    expect(b).toMatch(uuid);
    expect(uuid.exec(a)?.[0]).not.toBe(uuid.exec(b)?.[0]);
  });

  it('push: POST then PUT ?digest= answers 201 with a Location from which the blob is pullable', async () => {
    const data = randomBlob(4096);
    const location = await startUpload(repo);
    const res = await request('PUT', withQuery(location, { digest: sha256(data) }), { headers: OCTET, body: data });
    expect(res.status).toBe(201);
    const blobLocation = header(res, 'location');
    expect(blobLocation).toBeTruthy();
    const pulled = await request('GET', blobLocation!);
    expect(pulled.status).toBe(200);
    expect(pulled.body.equals(data)).toBe(true);
    await expectBlobStored(repo, data);
  });

  it('push: a single POST ?digest= with the blob answers 201 + Location (or, where unsupported, 202 + Location and the PUT completes it)', async () => {
    const data = randomBlob(3000);
    const digest = sha256(data);
    const res = await request('POST', `/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(digest)}`, { headers: OCTET, body: data });
    expect(own ? [201] : [201, 202]).toContain(res.status); // ours completes single-POST uploads
    const location = header(res, 'location');
    expect(location).toBeTruthy();
    if (res.status === 201) {
      const pulled = await request('GET', location!);
      expect(pulled.status).toBe(200);
      expect(pulled.body.equals(data)).toBe(true);
    } else {
      const put = await request('PUT', withQuery(location!, { digest }), { headers: OCTET, body: data });
      expect(put.status).toBe(201);
    }
    await expectBlobStored(repo, data);
  });

  it('push: PUT with a digest that does not match the bytes answers 400 DIGEST_INVALID and stores nothing', async () => {
    const data = randomBlob(1000);
    const wrong = unknownDigest();
    const location = await startUpload(repo);
    const res = await request('PUT', withQuery(location, { digest: wrong }), { headers: OCTET, body: data });
    expectError(res, 400, 'DIGEST_INVALID');
    await expectBlobAbsent(repo, wrong);
    await expectBlobAbsent(repo, sha256(data));
  });

  it('push: a single POST ?digest= whose digest does not match the bytes answers 400 DIGEST_INVALID (or 202 where single POST is unsupported) and stores nothing', async () => {
    const data = randomBlob(1000);
    const wrong = unknownDigest();
    const res = await request('POST', `/v2/${repo}/blobs/uploads/?digest=${encodeURIComponent(wrong)}`, { headers: OCTET, body: data });
    if (own) expect(res.status).toBe(400); // ours supports single POST, so it checks the digest
    if (res.status === 202) {
      // Single POST unsupported: the answer must be an ordinary session.
      expect(header(res, 'location')).toBeTruthy();
      expect((await request('GET', header(res, 'location')!)).status).toBe(204);
    } else {
      expectError(res, 400, 'DIGEST_INVALID');
    }
    await expectBlobAbsent(repo, wrong);
    await expectBlobAbsent(repo, sha256(data));
  });

  it('push: (SHOULD, [main]) PUT with a malformed digest answers 400', async () => {
    const data = randomBlob(100);
    const location = await startUpload(repo);
    const res = await request('PUT', withQuery(location, { digest: 'sha256:not-a-digest' }), { headers: OCTET, body: data });
    expectError(res, 400, ['DIGEST_INVALID', 'BLOB_UPLOAD_INVALID']);
  });

  it('push: (SHOULD) a blob pushed under a sha512 digest is stored and pullable by that digest', async () => {
    const data = randomBlob(2000);
    const digest = `sha512:${createHash('sha512').update(data).digest('hex')}`;
    const res = await request('POST', `/v2/${repo}/blobs/uploads/?digest-algorithm=sha512`, { headers: { 'Content-Length': '0' } });
    expect(res.status).toBe(202);
    const put = await request('PUT', withQuery(header(res, 'location')!, { digest }), { headers: OCTET, body: data });
    expect(put.status, put.body.toString('utf8')).toBe(201);
    const pulled = await request('GET', `/v2/${repo}/blobs/${digest}`);
    expect(pulled.status).toBe(200);
    expect(pulled.body.equals(data)).toBe(true);
  });

  it('push: [main] concurrent upload sessions get distinct Locations and both complete', async () => {
    const a = randomBlob(500);
    const b = randomBlob(700);
    const [la, lb] = await Promise.all([startUpload(repo), startUpload(repo)]);
    expect(la).not.toBe(lb);
    const [ra, rb] = await Promise.all([
      request('PUT', withQuery(la, { digest: sha256(a) }), { headers: OCTET, body: a }),
      request('PUT', withQuery(lb, { digest: sha256(b) }), { headers: OCTET, body: b }),
    ]);
    expect(ra.status).toBe(201);
    expect(rb.status).toBe(201);
    await expectBlobStored(repo, a);
    await expectBlobStored(repo, b);
  });
});

describe('push: chunked blob upload', () => {
  it('push: each PATCH answers 202 with Location and Range 0-<last byte>, and the closing PUT answers 201', async () => {
    // Chunks of 1 KiB, or of the registry's OCI-Chunk-Min-Length where it announces a larger one.
    const post = await request('POST', `/v2/${repo}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
    expect(post.status).toBe(202);
    const size = Math.max(1024, Number(header(post, 'oci-chunk-min-length') ?? 0) || 0);
    const data = randomBlob(3 * size + 17);
    const chunks = [data.subarray(0, size), data.subarray(size, 2 * size), data.subarray(2 * size)];
    let location = header(post, 'location')!;
    expect(location).toBeTruthy();
    let offset = 0;
    for (const chunk of chunks) {
      const res = await patchChunk(location, chunk, offset);
      expect(res.status, res.body.toString('utf8')).toBe(202);
      offset += chunk.length;
      expect(header(res, 'range')).toBe(`0-${offset - 1}`);
      const next = header(res, 'location');
      expect(next).toBeTruthy();
      location = next!;
    }
    const res = await request('PUT', withQuery(location, { digest: sha256(data) }));
    expect(res.status).toBe(201);
    expect(header(res, 'location')).toBeTruthy();
    await expectBlobStored(repo, data);
  });

  it('push: GET on an upload session answers 204 with Location and Range 0-<last byte>', async () => {
    const chunk = randomBlob(1500);
    const location = await startUpload(repo);
    const patched = await patchChunk(location, chunk, 0);
    expect(patched.status).toBe(202);
    const res = await request('GET', header(patched, 'location')!);
    expect(res.status).toBe(204);
    expect(header(res, 'location')).toBeTruthy();
    expect(header(res, 'range')).toBe(`0-${chunk.length - 1}`);
  });

  it('push: PATCH with a Content-Range that skips ahead of the upload answers 416', async () => {
    const data = randomBlob(2048);
    const location = await startUpload(repo);
    const first = await patchChunk(location, data.subarray(0, 1024), 0);
    expect(first.status).toBe(202);
    const res = await patchChunk(header(first, 'location')!, data.subarray(1024), 1500);
    expect(res.status).toBe(416);
  });

  it('push: PATCH with a Content-Range that restarts inside the upload answers 416', async () => {
    const data = randomBlob(2048);
    const location = await startUpload(repo);
    const first = await patchChunk(location, data.subarray(0, 1024), 0);
    expect(first.status).toBe(202);
    const res = await patchChunk(header(first, 'location')!, data.subarray(0, 1024), 0);
    expect(res.status).toBe(416);
  });

  it('push: a first PATCH whose Content-Range does not begin at 0 answers 416', async () => {
    const location = await startUpload(repo);
    const res = await patchChunk(location, randomBlob(100), 100);
    expect(res.status).toBe(416);
  });

  it('push: after a 416, GET on the session reports the range before it and the upload can go on', async () => {
    const data = randomBlob(2048);
    const location = await startUpload(repo);
    const first = await patchChunk(location, data.subarray(0, 1024), 0);
    expect(first.status).toBe(202);
    const bad = await patchChunk(header(first, 'location')!, data.subarray(1024), 2000);
    expect(bad.status).toBe(416);
    const status = await request('GET', header(first, 'location')!);
    expect(status.status).toBe(204);
    expect(header(status, 'range')).toBe('0-1023');
    const second = await patchChunk(header(status, 'location')!, data.subarray(1024), 1024);
    expect(second.status).toBe(202);
    expect(header(second, 'range')).toBe('0-2047');
    const done = await request('PUT', withQuery(header(second, 'location')!, { digest: sha256(data) }));
    expect(done.status).toBe(201);
    await expectBlobStored(repo, data);
  });

  it('push: the final chunk may come in the closing PUT (with Content-Range), answering 201', async () => {
    const data = randomBlob(2500);
    const location = await startUpload(repo);
    const first = await patchChunk(location, data.subarray(0, 1000), 0);
    expect(first.status).toBe(202);
    const res = await request('PUT', withQuery(header(first, 'location')!, { digest: sha256(data) }), {
      headers: { ...OCTET, 'Content-Range': `1000-${data.length - 1}` },
      body: data.subarray(1000),
    });
    expect(res.status).toBe(201);
    await expectBlobStored(repo, data);
  });

  it('push: [main] a closing PUT whose chunk does not continue the upload answers 416', async () => {
    const data = randomBlob(2500);
    const location = await startUpload(repo);
    const first = await patchChunk(location, data.subarray(0, 1000), 0);
    expect(first.status).toBe(202);
    const res = await request('PUT', withQuery(header(first, 'location')!, { digest: sha256(data) }), {
      headers: { ...OCTET, 'Content-Range': `1200-${data.length + 199}` },
      body: data.subarray(1000),
    });
    expect(res.status).toBe(416);
    await expectBlobAbsent(repo, sha256(data));
  });

  it('push: a chunked upload closed with a digest that does not match answers 400 DIGEST_INVALID', async () => {
    const data = randomBlob(1500);
    const location = await startUpload(repo);
    const first = await patchChunk(location, data, 0);
    expect(first.status).toBe(202);
    const res = await request('PUT', withQuery(header(first, 'location')!, { digest: unknownDigest() }));
    expectError(res, 400, 'DIGEST_INVALID');
    await expectBlobAbsent(repo, sha256(data));
  });
});

describe('push: upload sessions', () => {
  it('push: GET on an unknown upload session answers 404 ((beyond 1.1) ours: BLOB_UPLOAD_UNKNOWN)', async () => {
    const res = await request('GET', `/v2/${repo}/blobs/uploads/${randomUUID()}`);
    expectSessionUnknown(res);
  });

  it('push: PATCH on an unknown upload session answers 404 ((beyond 1.1) ours: BLOB_UPLOAD_UNKNOWN)', async () => {
    const res = await request('PATCH', `/v2/${repo}/blobs/uploads/${randomUUID()}`, {
      headers: { ...OCTET, 'Content-Range': '0-9' },
      body: randomBlob(10),
    });
    expectSessionUnknown(res);
  });

  it('push: (API of the original v2 protocol, not in the 1.1 text) DELETE on an upload session cancels it; it then answers 404 ((beyond 1.1) ours: BLOB_UPLOAD_UNKNOWN)', async () => {
    const location = await startUpload(repo);
    const patched = await patchChunk(location, randomBlob(100), 0);
    expect(patched.status).toBe(202);
    const current = header(patched, 'location')!;
    const res = await request('DELETE', current);
    expect(res.status).toBe(204);
    const after = await request('GET', current);
    expectSessionUnknown(after);
    const put = await request('PUT', withQuery(current, { digest: unknownDigest() }), { headers: OCTET, body: randomBlob(10) });
    expectSessionUnknown(put);
  });

  it('push: a completed upload session is gone (GET answers 404; (beyond 1.1) ours: BLOB_UPLOAD_UNKNOWN)', async () => {
    const data = randomBlob(300);
    const location = await startUpload(repo);
    const done = await request('PUT', withQuery(location, { digest: sha256(data) }), { headers: OCTET, body: data });
    expect(done.status).toBe(201);
    const res = await request('GET', location);
    expectSessionUnknown(res);
  });
});

describe('push: cross-repository mount', () => {
  const source = repoName('push-mount-source');

  it('push: mount with from= of a blob in another repository answers 201 with Location and the blob is pullable there (or, where the registry cannot mount, 202 with a working session)', async () => {
    const data = randomBlob(1200);
    const digest = await pushBlob(source, data);
    const target = repoName('push-mount-a');
    const res = await request('POST', `/v2/${target}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(source)}`, {
      headers: { 'Content-Length': '0' },
    });
    // "if a registry does not support cross-repository mounting or is unable to mount the requested blob, it SHOULD return a 202"
    expect(own ? [201] : [201, 202], res.body.toString('utf8')).toContain(res.status); // ours mounts
    const location = header(res, 'location');
    expect(location).toBeTruthy();
    if (res.status === 201) {
      const pulled = await request('GET', location!);
      expect(pulled.status).toBe(200);
      expect(pulled.body.equals(data)).toBe(true);
    } else {
      const status = await request('GET', location!);
      expect(status.status).toBe(204);
      const put = await request('PUT', withQuery(location!, { digest }), { headers: OCTET, body: data });
      expect(put.status).toBe(201);
    }
    await expectBlobStored(target, data);
  });

  it('push: (SHOULD) mount of an unknown blob answers 202 with an upload session that works', async () => {
    const target = repoName('push-mount-b');
    const data = randomBlob(800);
    const res = await request('POST', `/v2/${target}/blobs/uploads/?mount=${encodeURIComponent(unknownDigest())}&from=${encodeURIComponent(source)}`, {
      headers: { 'Content-Length': '0' },
    });
    expect(res.status).toBe(202);
    const location = header(res, 'location');
    expect(location).toBeTruthy();
    const put = await request('PUT', withQuery(location!, { digest: sha256(data) }), { headers: OCTET, body: data });
    expect(put.status).toBe(201);
    await expectBlobStored(target, data);
  });

  it('push: mount without from= answers 201 with the blob mounted (MAY) or 202 with a working session', async () => {
    const data = randomBlob(900);
    const digest = await pushBlob(source, data);
    const target = repoName('push-mount-c');
    const res = await request('POST', `/v2/${target}/blobs/uploads/?mount=${encodeURIComponent(digest)}`, { headers: { 'Content-Length': '0' } });
    // Ours mounts automatically where the caller may pull the blob from a repository holding it;
    // a bearer token covers only the repositories it names (here the target), so with the token
    // server ours opens a session instead.
    expect(own && authMode() !== 'token' ? [201] : [201, 202]).toContain(res.status);
    const location = header(res, 'location');
    expect(location).toBeTruthy();
    if (res.status === 202) {
      const status = await request('GET', location!);
      expect(status.status).toBe(204);
      const put = await request('PUT', withQuery(location!, { digest }), { headers: OCTET, body: data });
      expect(put.status).toBe(201);
    }
    await expectBlobStored(target, data);
  });
});

describe('push: manifests', () => {
  it('push: PUT manifest by tag answers 201 with Location and Docker-Content-Digest of the bytes', async () => {
    const image = await pushImageBlobs(repo);
    const res = await putManifest(repo, 'by-tag', image.manifest);
    expect(res.status, res.body.toString('utf8')).toBe(201);
    expect(header(res, 'docker-content-digest')).toBe(image.digest);
    const location = header(res, 'location');
    expect(location).toBeTruthy();
    const pulled = await request('GET', location!, { headers: { Accept: OCI_MANIFEST } });
    expect(pulled.status).toBe(200);
    expect(pulled.body.equals(image.manifest)).toBe(true);
    const byTag = await request('GET', `/v2/${repo}/manifests/by-tag`, { headers: { Accept: OCI_MANIFEST } });
    expect(byTag.status).toBe(200);
    expect(byTag.body.equals(image.manifest)).toBe(true);
  });

  it('push: PUT manifest by digest answers 201 with Docker-Content-Digest equal to that digest and a Location that serves the bytes', async () => {
    const image = await pushImageBlobs(repo);
    const res = await putManifest(repo, image.digest, image.manifest);
    expect(res.status, res.body.toString('utf8')).toBe(201);
    expect(header(res, 'docker-content-digest')).toBe(image.digest);
    const location = header(res, 'location');
    expect(location).toBeTruthy();
    // "The `<location>` is a pullable manifest URL."
    const fromLocation = await request('GET', location!, { headers: { Accept: OCI_MANIFEST } });
    expect(fromLocation.status).toBe(200);
    expect(fromLocation.body.equals(image.manifest)).toBe(true);
    const pulled = await request('GET', `/v2/${repo}/manifests/${image.digest}`, { headers: { Accept: OCI_MANIFEST } });
    expect(pulled.status).toBe(200);
    expect(pulled.body.equals(image.manifest)).toBe(true);
  });

  it('push: PUT of another manifest to an existing tag moves the tag to it', async () => {
    const first = await pushImage(repo, 'moving');
    const second = await pushImageBlobs(repo);
    const res = await putManifest(repo, 'moving', second.manifest);
    expect(res.status).toBe(201);
    const pulled = await request('GET', `/v2/${repo}/manifests/moving`, { headers: { Accept: OCI_MANIFEST } });
    expect(pulled.status).toBe(200);
    expect(pulled.body.equals(second.manifest)).toBe(true);
    const old = await request('GET', `/v2/${repo}/manifests/${first.digest}`, { headers: { Accept: OCI_MANIFEST } });
    expect(old.status).toBe(200);
    expect(old.body.equals(first.manifest)).toBe(true);
  });

  it('push: a tag of 128 characters from the whole tag alphabet is accepted and pullable', async () => {
    const image = await pushImageBlobs(repo);
    const tag = `A_b.c-D${'x'.repeat(121)}`;
    expect(tag.length).toBe(128);
    const res = await putManifest(repo, tag, image.manifest);
    expect(res.status, res.body.toString('utf8')).toBe(201);
    const pulled = await request('GET', `/v2/${repo}/manifests/${tag}`, { headers: { Accept: OCI_MANIFEST } });
    expect(pulled.status).toBe(200);
    expect(pulled.body.equals(image.manifest)).toBe(true);
  });

  it('push: (SHOULD) parameters on the PUT Content-Type are ignored, and GET answers the media type without parameters', async () => {
    const image = await pushImageBlobs(repo);
    const res = await putManifest(repo, 'ct-params', image.manifest, `${OCI_MANIFEST}; charset=utf-8`);
    expect(res.status, res.body.toString('utf8')).toBe(201);
    expect(header(res, 'docker-content-digest')).toBe(image.digest);
    const pulled = await request('GET', `/v2/${repo}/manifests/ct-params`, { headers: { Accept: OCI_MANIFEST } });
    expect(pulled.status).toBe(200);
    expect(header(pulled, 'content-type')).toBe(OCI_MANIFEST);
    expect(pulled.body.equals(image.manifest)).toBe(true);
  });

  it('push: the manifest is stored in the exact bytes given (odd whitespace and key order survive)', async () => {
    const image = await pushImageBlobs(repo);
    const doc = JSON.parse(image.manifest.toString('utf8')) as Record<string, unknown>;
    const odd = Buffer.from(
      `{ "layers" :${JSON.stringify(doc.layers)},\n\t"config":  ${JSON.stringify(doc.config)} ,"mediaType":"${OCI_MANIFEST}",   "schemaVersion" : 2 }\n\n`,
    );
    const digest = sha256(odd);
    const res = await putManifest(repo, 'odd-bytes', odd);
    expect(res.status, res.body.toString('utf8')).toBe(201);
    expect(header(res, 'docker-content-digest')).toBe(digest);
    for (const ref of ['odd-bytes', digest]) {
      const pulled = await request('GET', `/v2/${repo}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      expect(pulled.status).toBe(200);
      expect(pulled.body.equals(odd)).toBe(true);
    }
  });

  it('push: an image index is accepted and served back with its media type', async () => {
    const a = await pushImage(repo, `index-child-a`);
    const b = await pushImage(repo, `index-child-b`);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { ...descriptor(OCI_MANIFEST, a.manifest), platform: { architecture: 'amd64', os: 'linux' } },
          { ...descriptor(OCI_MANIFEST, b.manifest), platform: { architecture: 'arm64', os: 'linux' } },
        ],
      }),
    );
    const res = await putManifest(repo, 'an-index', index, OCI_INDEX);
    expect(res.status, res.body.toString('utf8')).toBe(201);
    expect(header(res, 'docker-content-digest')).toBe(sha256(index));
    const pulled = await request('GET', `/v2/${repo}/manifests/an-index`, { headers: { Accept: OCI_INDEX } });
    expect(pulled.status).toBe(200);
    expect(mediaTypeOf(pulled)).toBe(OCI_INDEX);
    expect(pulled.body.equals(index)).toBe(true);
  });

  it('push: a manifest whose layer is missing is either rejected (4xx) with MANIFEST_BLOB_UNKNOWN or (MAY) accepted and pullable', async () => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomUUID() }));
    await pushBlob(repo, config);
    const manifest = imageManifest(config, [randomBlob(512)]); // the layer is never pushed
    await expectRejectedOrKept(repo, 'missing-layer', manifest, OCI_MANIFEST);
  });

  it('push: a manifest whose config blob is missing is either rejected (4xx) with MANIFEST_BLOB_UNKNOWN or (MAY) accepted and pullable', async () => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomUUID() })); // never pushed
    const layer = randomBlob(512);
    await pushBlob(repo, layer);
    const manifest = imageManifest(config, [layer]);
    await expectRejectedOrKept(repo, 'missing-config', manifest, OCI_MANIFEST);
  });

  it('push: an index whose child manifest is missing is either rejected (4xx) with MANIFEST_BLOB_UNKNOWN or (MAY) accepted and pullable', async () => {
    const missing = await pushImageBlobs(repo); // blobs only: the manifest itself is never pushed
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [descriptor(OCI_MANIFEST, missing.manifest)] }));
    await expectRejectedOrKept(repo, 'index-missing-child', index, OCI_INDEX);
  });

  it('push: a manifest that is not valid JSON is refused with a 4xx and not stored ((beyond 1.1) ours: 400 MANIFEST_INVALID)', async () => {
    const res = await putManifest(repo, 'not-json', Buffer.from('{"schemaVersion": 2, "mediaType": '));
    if (own) expectError(res, 400, 'MANIFEST_INVALID');
    else expectClientError(res);
    const pulled = await request('GET', `/v2/${repo}/manifests/not-json`, { headers: { Accept: OCI_MANIFEST } });
    expect(pulled.status).toBe(404);
  });

  it('push: an image manifest without a config is refused with a 4xx and not stored ((beyond 1.1) ours: 400 MANIFEST_INVALID)', async () => {
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }));
    const res = await putManifest(repo, 'no-config', body);
    if (own) expectError(res, 400, 'MANIFEST_INVALID');
    else expectClientError(res);
    const pulled = await request('GET', `/v2/${repo}/manifests/no-config`, { headers: { Accept: OCI_MANIFEST } });
    expect(pulled.status).toBe(404);
  });

  it('push: PUT manifest by a digest that does not match its bytes answers 400 (DIGEST_INVALID) and stores nothing', async () => {
    const image = await pushImageBlobs(repo);
    const wrong = unknownDigest();
    const res = await putManifest(repo, wrong, image.manifest);
    expectError(res, 400, 'DIGEST_INVALID');
    for (const ref of [wrong, image.digest]) {
      const pulled = await request('GET', `/v2/${repo}/manifests/${ref}`, { headers: { Accept: OCI_MANIFEST } });
      expect(pulled.status).toBe(404);
    }
  });

  it('push: a manifest whose subject does not exist yet is accepted (201)', async () => {
    const image = await pushImageBlobs(repo, { subject: { mediaType: OCI_MANIFEST, digest: unknownDigest(), size: 1234 } });
    const res = await putManifest(repo, image.digest, image.manifest);
    expect(res.status, res.body.toString('utf8')).toBe(201);
    const pulled = await request('GET', `/v2/${repo}/manifests/${image.digest}`, { headers: { Accept: OCI_MANIFEST } });
    expect(pulled.status).toBe(200);
  });

  it('push: a manifest with a subject answers 201 with OCI-Subject: <subject digest> (registries with the referrers API)', async (ctx) => {
    // "a registry implementation that supports the referrers API MUST respond with the response header
    // `OCI-Subject: <subject digest>`": a registry whose referrers endpoint answers 404 does not support it.
    const probe = await request('GET', `/v2/${repo}/referrers/${unknownDigest()}`);
    if (!own && probe.status === 404) ctx.skip('the referrers API answers 404 here, and OCI-Subject is required only of registries that support it');
    const subject = await pushImage(repo, 'subject-target');
    const artifact = Buffer.from('{}');
    await pushBlob(repo, artifact);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.conformance.v1',
        config: descriptor(OCI_EMPTY, artifact),
        layers: [descriptor(OCI_EMPTY, artifact)],
        subject: descriptor(OCI_MANIFEST, subject.manifest),
      }),
    );
    const res = await putManifest(repo, sha256(manifest), manifest);
    expect(res.status, res.body.toString('utf8')).toBe(201);
    expect(header(res, 'oci-subject')).toBe(subject.digest);
  });

  it('push: (SHOULD) a manifest of nearly 4 MB is accepted and served back byte for byte', async () => {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', nonce: randomUUID() }));
    await pushBlob(repo, config);
    const annotations: Record<string, string> = {};
    const filler = 'x'.repeat(1000);
    for (let i = 0; i < 3700; i++) annotations[`org.example.conformance.k${i}`] = filler;
    const manifest = imageManifest(config, [], { annotations }, OCI_CONFIG);
    expect(manifest.length).toBeGreaterThan(3_800_000);
    expect(manifest.length).toBeLessThan(4_000_000);
    const res = await putManifest(repo, 'large', manifest);
    expect(res.status, res.body.toString('utf8').slice(0, 300)).toBe(201);
    const pulled = await request('GET', `/v2/${repo}/manifests/large`, { headers: { Accept: OCI_MANIFEST } });
    expect(pulled.status).toBe(200);
    expect(pulled.body.equals(manifest)).toBe(true);
  });
});
