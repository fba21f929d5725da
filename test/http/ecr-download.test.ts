// GET/HEAD /ecr/download/<repo>/<digest>?token=: the registry's own URL for GetDownloadUrlForLayer.
import Fastify, { type FastifyInstance } from 'fastify';
import { GetDownloadUrlForLayerCommand } from '@aws-sdk/client-ecr';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EcrCredentials } from '../../src/auth/ecr-credentials.js';
import { ecrDownloadRoutes } from '../../src/http/ecr/download-route.js';
import { Digest } from '../../src/oci/digest.js';
import { KEY, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, once, openFixture, type Fixture } from '../ecr/images-fixture.js';
import { startEcrRegistry, type EcrTestRegistry } from '../ecr/sdk-support.js';

const REPO = 'team/app';
const MINUTE = 60_000;

describe('the download route', () => {
  let f: Fixture;
  let app: FastifyInstance;
  let content: Buffer;
  let digest: string;
  const url = (token: string, repo = REPO, d = digest) => `/ecr/download/${repo}/${d}?token=${encodeURIComponent(token)}`;
  const sign = (repo = REPO, d = digest, expiresAt = Date.now() + 10 * MINUTE) => f.credentials.signDownload(KEY, repo, d, expiresAt);

  beforeEach(async () => {
    f = await openFixture();
    f.repositories.add(REPO);
    content = Buffer.from('the bytes of a layer, '.repeat(50));
    digest = await f.pushBlob(REPO, content);
    app = Fastify({ logger: false });
    await app.register(ecrDownloadRoutes, { registry: f.registry, credentials: f.credentials });
    await app.ready();
  });
  afterEach(async () => {
    await app.close();
    await f.close();
  });

  it('serves the blob to a valid token, with its length, digest and type', async () => {
    const res = await app.inject({ method: 'GET', url: url(sign()) });
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.equals(content)).toBe(true);
    expect(res.headers['content-length']).toBe(String(content.length));
    expect(res.headers['docker-content-digest']).toBe(digest);
    expect(res.headers['content-type']).toBe('application/octet-stream');
    expect(res.headers['cache-control']).toContain('no-store');

    const head = await app.inject({ method: 'HEAD', url: url(sign()) });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(String(content.length));
    expect(head.rawPayload.length).toBe(0);
  });

  it('serves ranges', async () => {
    const res = await app.inject({ method: 'GET', url: url(sign()), headers: { range: 'bytes=4-13' } });
    expect(res.statusCode).toBe(206);
    expect(res.body).toBe(content.subarray(4, 14).toString());
    expect(res.headers['content-range']).toBe(`bytes 4-13/${content.length}`);
    expect(res.headers['content-length']).toBe('10');
    const tail = await app.inject({ method: 'GET', url: url(sign()), headers: { range: 'bytes=-5' } });
    expect(tail.body).toBe(content.subarray(content.length - 5).toString());
    const beyond = await app.inject({ method: 'GET', url: url(sign()), headers: { range: `bytes=${content.length}-` } });
    expect(beyond.statusCode).toBe(416);
    expect(beyond.headers['content-range']).toBe(`bytes */${content.length}`);
  });

  it('refuses with 403 a missing, tampered, expired or misdirected token, and bad paths', async () => {
    const refused = async (u: string) => {
      const res = await app.inject({ method: 'GET', url: u });
      expect(res.statusCode, u).toBe(403);
      expect(res.json()).toMatchObject({ code: 'AccessDenied' });
      expect(res.body).not.toContain('the bytes');
      return res;
    };
    await refused(`/ecr/download/${REPO}/${digest}`);
    const token = sign();
    await refused(url(`${token.slice(0, -2)}xx`));
    await refused(url(sign(REPO, digest, Date.now() - 1)));
    // The token names the repository and the digest.
    f.repositories.add('team/other');
    await f.pushBlob('team/other', content);
    await refused(url(token, 'team/other'));
    const other = await f.pushBlob(REPO, 'another layer');
    await refused(url(token, REPO, other));
    await refused(`/ecr/download/${digest}?token=${token}`);
    await refused(`/ecr/download/Bad%20Name/${digest}?token=${token}`);
    await refused(`/ecr/download/${REPO}/sha256:nothex?token=${token}`);
    // Signed by a key the registry does not have (another secret).
    const stranger = new EcrCredentials([{ ...KEY, secretAccessKey: 'another-secret-0123456789abcdef' }]);
    await refused(url(stranger.signDownload({ ...KEY, secretAccessKey: 'another-secret-0123456789abcdef' }, REPO, digest, Date.now() + MINUTE)));
  });

  it('answers 404 once the layer has left the repository', async () => {
    const token = sign();
    await f.registry.blobs.unlink(REPO, Digest.parse(digest));
    const res = await app.inject({ method: 'GET', url: url(token) });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toMatchObject({ code: 'LayersNotFound' });
  });
});

describe('GetDownloadUrlForLayer through the app', () => {
  let reg: EcrTestRegistry;
  beforeEach(async () => {
    reg = await startEcrRegistry({ ecr: { createonpush: true } });
  });
  afterEach(async () => {
    await reg.destroy();
  });

  it('gives a URL that serves the layer to anyone holding it, without other credentials', async () => {
    // Pushed with the registry's use cases (what a /v2/ push runs), the repository created by the push.
    const registry = reg.app.registry;
    const layer = Buffer.from('layer:downloadable');
    const config = Buffer.from('{}');
    const layerDigest = Digest.of(layer).toString();
    await registry.uploads.monolithic(REPO, Digest.of(layer), once(layer), layer.length);
    await registry.uploads.monolithic(REPO, Digest.of(config), once(config), config.length);
    const manifest = {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: Digest.of(config).toString(), size: config.length },
      layers: [{ mediaType: OCI_LAYER, digest: layerDigest, size: layer.length }],
    };
    await registry.manifests.put(REPO, { tag: 'v1' }, Buffer.from(JSON.stringify(manifest)), OCI_MANIFEST);

    const out = await reg.client('admin').send(new GetDownloadUrlForLayerCommand({ repositoryName: REPO, layerDigest }));
    expect(out.layerDigest).toBe(layerDigest);
    expect(out.downloadUrl).toMatch(new RegExp(`^${reg.url}/ecr/download/${REPO}/${layerDigest}\\?token=`));
    const res = await fetch(out.downloadUrl!);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('layer:downloadable');
    expect(res.headers.get('docker-content-digest')).toBe(layerDigest);

    const tampered = await fetch(out.downloadUrl!.replace(/.$/, (c) => (c === 'A' ? 'B' : 'A')));
    expect(tampered.status).toBe(403);
  });
});
