// The error envelope and codes, for unknown content and for malformed names, digests and references.
import { describe, expect, it } from 'vitest';
import {
  OCI_MANIFEST,
  errorCodes,
  expectError,
  json,
  pushImage,
  putManifest,
  repoName,
  request,
  unknownDigest,
} from './support.js';

const repo = repoName('errors');

describe('errors', () => {
  it('errors: a 4xx JSON body is {"errors":[{code, message?, detail?}]} with an upper-case code from the spec', async () => {
    const res = await request('GET', `/v2/${repo}/blobs/${unknownDigest()}`);
    expect(res.status).toBe(404);
    const body = json<{ errors: Array<Record<string, unknown>> }>(res);
    expect(Object.keys(body)).toContain('errors');
    for (const e of body.errors) {
      for (const key of Object.keys(e)) expect(['code', 'message', 'detail']).toContain(key);
    }
    const codes = errorCodes(res);
    const known = [
      'BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN',
      'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'UNAUTHORIZED',
      'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS',
    ];
    for (const code of codes) expect(known).toContain(code);
  });

  it('errors: a repository name with upper-case letters is refused with NAME_INVALID', async () => {
    const res = await request('POST', `/v2/${repo}/Upper-Case/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
    expectError(res, [400, 404], 'NAME_INVALID');
  });

  it('errors: a repository name with a malformed component (double dot) is refused with NAME_INVALID', async () => {
    const res = await request('POST', `/v2/${repo}/bad..name/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
    expectError(res, [400, 404], 'NAME_INVALID');
  });

  it('errors: a repository name of 256 characters or more is refused with NAME_INVALID', async () => {
    const long = `${repo}/${'a'.repeat(256)}`;
    const res = await request('POST', `/v2/${long}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
    expectError(res, [400, 404], 'NAME_INVALID');
  });

  it('errors: a blob GET with a malformed digest answers 400 or 404 with DIGEST_INVALID', async () => {
    await pushImage(repo, 'exists');
    const res = await request('GET', `/v2/${repo}/blobs/sha256:xyz`);
    expectError(res, [400, 404], 'DIGEST_INVALID');
  });

  it('errors: a manifest PUT whose reference is neither a tag nor a digest is refused with an error envelope and stores nothing', async () => {
    const image = await pushImage(repo, 'base');
    for (const reference of ['-starts-with-dash', 'x'.repeat(129), 'sha256:abc']) {
      const res = await putManifest(repo, reference, image.manifest);
      expectError(res, [400, 404], ['TAG_INVALID', 'MANIFEST_INVALID', 'DIGEST_INVALID', 'NAME_INVALID']);
      const pulled = await request('GET', `/v2/${repo}/manifests/${encodeURIComponent(reference)}`, { headers: { Accept: OCI_MANIFEST } });
      expect(pulled.status).not.toBe(200);
    }
  });
});
