// Content management: deleting tags, manifests and blobs (or, where the target disables
// deletes — OCI_CONFORMANCE_DELETES=false — the spec's 400/405 answers).
import { describe, expect, it } from 'vitest';
import {
  OCI_EMPTY,
  OCI_INDEX,
  OCI_MANIFEST,
  descriptor,
  expectError,
  json,
  pushBlob,
  pushImage,
  putManifest,
  randomBlob,
  repoName,
  request,
  sha256,
  target,
  unknownDigest,
} from './support.js';

const repo = repoName('manage');
const ACCEPT = { Accept: `${OCI_MANIFEST}, ${OCI_INDEX}` };

async function status(method: string, path: string): Promise<number> {
  return (await request(method, path, { headers: ACCEPT })).status;
}

describe.runIf(target.deletes)('content management (deletes enabled)', () => {
  it('delete: DELETE of a tag answers 202, after which the tag answers 404 and the manifest stays (or, where tag deletion is disabled, 400/405 and the tag stays)', async () => {
    const image = await pushImage(repo, 'to-untag');
    const keep = await putManifest(repo, 'keep-tag', image.manifest);
    expect(keep.status).toBe(201);
    const res = await request('DELETE', `/v2/${repo}/manifests/to-untag`);
    // The spec lets a registry refuse tag deletion; ours deletes tags, so for ours only 202 passes.
    const allowed = target.own ? [202] : [202, 400, 405];
    expect(allowed, res.body.toString('utf8')).toContain(res.status);
    const tags = json<{ tags: string[] | null }>(await request('GET', `/v2/${repo}/tags/list`)).tags ?? [];
    if (res.status === 202) {
      expect(await status('GET', `/v2/${repo}/manifests/to-untag`)).toBe(404);
      expect(tags).not.toContain('to-untag');
    } else {
      expect(await status('GET', `/v2/${repo}/manifests/to-untag`)).toBe(200);
      expect(tags).toContain('to-untag');
    }
    expect(await status('GET', `/v2/${repo}/manifests/${image.digest}`)).toBe(200);
    expect(await status('GET', `/v2/${repo}/manifests/keep-tag`)).toBe(200);
    expect(tags).toContain('keep-tag');
  });

  it('delete: DELETE of a manifest by digest answers 202; it and every tag pointing at it then answer 404', async () => {
    const image = await pushImage(repo, 'gone-1');
    const second = await putManifest(repo, 'gone-2', image.manifest);
    expect(second.status).toBe(201);
    const res = await request('DELETE', `/v2/${repo}/manifests/${image.digest}`);
    expect(res.status, res.body.toString('utf8')).toBe(202);
    const after = await request('GET', `/v2/${repo}/manifests/${image.digest}`, { headers: ACCEPT });
    expectError(after, 404, 'MANIFEST_UNKNOWN');
    expect(await status('HEAD', `/v2/${repo}/manifests/${image.digest}`)).toBe(404);
    expect(await status('GET', `/v2/${repo}/manifests/gone-1`)).toBe(404);
    expect(await status('GET', `/v2/${repo}/manifests/gone-2`)).toBe(404);
  });

  it('delete: DELETE of a manifest in a repository that does not exist answers 404', async () => {
    const res = await request('DELETE', `/v2/${repoName('no-such-repo')}/manifests/${unknownDigest()}`);
    expect(res.status).toBe(404);
  });

  it('delete: DELETE of an unknown manifest digest answers 404 MANIFEST_UNKNOWN', async () => {
    await pushImage(repo, 'exists');
    const res = await request('DELETE', `/v2/${repo}/manifests/${unknownDigest()}`);
    expectError(res, 404, 'MANIFEST_UNKNOWN');
  });

  it('delete: DELETE of a blob answers 202; GET and HEAD of it then answer 404', async () => {
    const data = randomBlob(1500);
    const digest = await pushBlob(repo, data);
    expect(await status('HEAD', `/v2/${repo}/blobs/${digest}`)).toBe(200);
    const res = await request('DELETE', `/v2/${repo}/blobs/${digest}`);
    expect(res.status, res.body.toString('utf8')).toBe(202);
    const after = await request('GET', `/v2/${repo}/blobs/${digest}`);
    expectError(after, 404, 'BLOB_UNKNOWN');
    expect(await status('HEAD', `/v2/${repo}/blobs/${digest}`)).toBe(404);
  });

  it('delete: DELETE of an unknown blob answers 404 BLOB_UNKNOWN', async () => {
    await pushBlob(repo, randomBlob(10));
    const res = await request('DELETE', `/v2/${repo}/blobs/${unknownDigest()}`);
    expectError(res, 404, 'BLOB_UNKNOWN');
  });

  it('delete: a deleted referrer is no longer listed by the referrers API', async () => {
    const subject = await pushImage(repo, 'referred');
    const empty = Buffer.from('{}');
    await pushBlob(repo, empty);
    const referrer = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        artifactType: 'application/vnd.example.conformance.v1',
        config: descriptor(OCI_EMPTY, empty),
        layers: [descriptor(OCI_EMPTY, empty)],
        subject: descriptor(OCI_MANIFEST, subject.manifest),
      }),
    );
    expect((await putManifest(repo, sha256(referrer), referrer)).status).toBe(201);
    const listed = await request('GET', `/v2/${repo}/referrers/${subject.digest}`);
    expect(listed.status).toBe(200);
    const before = json<{ manifests: Array<{ digest: string }> }>(listed);
    expect(before.manifests.map((m) => m.digest)).toEqual([sha256(referrer)]);
    expect((await request('DELETE', `/v2/${repo}/manifests/${sha256(referrer)}`)).status).toBe(202);
    const res = await request('GET', `/v2/${repo}/referrers/${subject.digest}`);
    expect(res.status).toBe(200);
    expect(json<{ manifests: unknown[] }>(res).manifests).toEqual([]);
  });
});

describe.runIf(!target.deletes)('content management (deletes disabled)', () => {
  it('delete: with deletes disabled, DELETE of a tag answers 400 or 405 and the tag stays', async () => {
    await pushImage(repo, 'stays');
    const res = await request('DELETE', `/v2/${repo}/manifests/stays`);
    expect([400, 405]).toContain(res.status);
    expect(await status('GET', `/v2/${repo}/manifests/stays`)).toBe(200);
  });

  it('delete: with deletes disabled, DELETE of a manifest by digest answers 400 or 405 and it stays', async () => {
    const image = await pushImage(repo, 'stays-too');
    const res = await request('DELETE', `/v2/${repo}/manifests/${image.digest}`);
    expect([400, 405]).toContain(res.status);
    expect(await status('GET', `/v2/${repo}/manifests/${image.digest}`)).toBe(200);
  });

  it('delete: with deletes disabled, DELETE of a blob answers 400 or 405 and it stays', async () => {
    const digest = await pushBlob(repo, randomBlob(100));
    const res = await request('DELETE', `/v2/${repo}/blobs/${digest}`);
    expect([400, 405]).toContain(res.status);
    expect(await status('HEAD', `/v2/${repo}/blobs/${digest}`)).toBe(200);
  });
});
