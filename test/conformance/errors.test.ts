// The error envelope and codes, for unknown content and for malformed names, digests and references.
//
// 1.1: "A `4XX` response code from the registry MAY return a body in any format. If the response body is
// in JSON format, it MUST have the following format" ({"errors":[{code, message, detail}]}), and "The
// `code` field MUST be one of the following" (the 14 codes in support.ts SPEC_ERROR_CODES). 1.1 names no
// code for a malformed name or digest, so those tests ask a foreign registry only for a 4xx, and check
// the code (marked "(beyond 1.1)") only against ours.
import { describe, expect, it } from 'vitest';
import {
  OCI_MANIFEST,
  SPEC_ERROR_CODES,
  errorCodes,
  expectClientError,
  expectError,
  json,
  pushImage,
  putManifest,
  repoName,
  request,
  target,
  unknownDigest,
} from './support.js';

const repo = repoName('errors');
/** Our own registry is held to the codes it gives where 1.1 names none. */
const own = target.own;

describe('errors', () => {
  it('errors: a 4xx JSON body is {"errors":[{code, message?, detail?, ...}]} with an upper-case code from the spec', async () => {
    const res = await request('GET', `/v2/${repo}/blobs/${unknownDigest()}`);
    expect(res.status).toBe(404);
    const body = json<{ errors: Array<Record<string, unknown>> }>(res);
    expect(Object.keys(body)).toContain('errors');
    for (const e of body.errors) {
      // Keys other than code, message and detail are allowed: the spec does not forbid them.
      expect(typeof e.code).toBe('string');
      if (e.message !== undefined) expect(typeof e.message).toBe('string');
    }
    const codes = errorCodes(res);
    for (const code of codes) expect(SPEC_ERROR_CODES).toContain(code);
  });

  it('errors: a repository name with upper-case letters is refused with a 4xx ((beyond 1.1) ours: NAME_INVALID)', async () => {
    const res = await request('POST', `/v2/${repo}/Upper-Case/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
    if (own) expectError(res, [400, 404], 'NAME_INVALID');
    else expectClientError(res);
  });

  it('errors: a repository name with a malformed component (double dot) is refused with a 4xx ((beyond 1.1) ours: NAME_INVALID)', async () => {
    const res = await request('POST', `/v2/${repo}/bad..name/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
    if (own) expectError(res, [400, 404], 'NAME_INVALID');
    else expectClientError(res);
  });

  // 1.1 sets no length limit on <name>; it has only an implementer's note ("registries should avoid
  // values of <name> that would cause this limit to be exceeded"). Ours refuses more than 256 characters (ECR's limit).
  it.runIf(own)('errors: (beyond 1.1; ours only) a repository name of more than 256 characters is refused with NAME_INVALID', async () => {
    const long = `${repo}/${'a'.repeat(256)}`;
    const res = await request('POST', `/v2/${long}/blobs/uploads/`, { headers: { 'Content-Length': '0' } });
    expectError(res, [400, 404], 'NAME_INVALID');
  });

  it('errors: a blob GET with a malformed digest answers a 4xx ((beyond 1.1) ours: DIGEST_INVALID)', async () => {
    await pushImage(repo, 'exists');
    const res = await request('GET', `/v2/${repo}/blobs/sha256:xyz`);
    if (own) expectError(res, [400, 404], 'DIGEST_INVALID');
    else expectClientError(res);
  });

  it('errors: a manifest PUT whose reference is neither a tag nor a digest is refused with a 4xx and stores nothing ((beyond 1.1) ours: 400 MANIFEST_INVALID for a bad tag, DIGEST_INVALID for a bad digest)', async () => {
    const image = await pushImage(repo, 'base');
    const cases: Array<[string, string]> = [
      ['-starts-with-dash', 'MANIFEST_INVALID'],
      ['x'.repeat(129), 'MANIFEST_INVALID'],
      ['sha256:abc', 'DIGEST_INVALID'],
    ];
    for (const [reference, ours] of cases) {
      const res = await putManifest(repo, reference, image.manifest);
      if (own) expectError(res, 400, ours);
      else expectClientError(res);
      const pulled = await request('GET', `/v2/${repo}/manifests/${encodeURIComponent(reference)}`, { headers: { Accept: OCI_MANIFEST } });
      expect(pulled.status).not.toBe(200);
    }
  });
});
