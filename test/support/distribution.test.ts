// The test upstream itself: CNCF distribution started with htpasswd, an image pushed into it with
// pushImage, its access log counted, and a stop and start on the same port and storage.
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { extract } from 'tar-stream';
import { describeWithDistribution, startDistribution, type Distribution } from './distribution.js';
import { fetchManifest, moveTag, pushImage, type PushedImage, type RegistryAuth } from './upstream-images.js';
import { getDigest } from './socket.js';
import { OCI_INDEX, OCI_MANIFEST, digestOf } from '../helpers.js';

const MiB = 1024 * 1024;

describeWithDistribution('distribution as a test upstream', () => {
  let upstream: Distribution;
  let auth: RegistryAuth;
  let image: PushedImage;

  beforeAll(async () => {
    upstream = await startDistribution({ htpasswd: { user: 'alice', password: 'wonderland' } });
    auth = { username: 'alice', password: 'wonderland' };
  });
  afterAll(async () => {
    await upstream?.close();
  });

  it('answers on loopback and refuses requests without credentials', async () => {
    expect(upstream.url).toBe(`http://127.0.0.1:${upstream.port}`);
    const anonymous = await fetch(`${upstream.url}/v2/`);
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get('www-authenticate')).toMatch(/^Basic /);
    const wrong = await fetch(`${upstream.url}/v2/`, { headers: { authorization: `Basic ${Buffer.from('alice:nope').toString('base64')}` } });
    expect(wrong.status).toBe(401);
    const right = await fetch(`${upstream.url}/v2/`, { headers: { authorization: upstream.authorization! } });
    expect(right.status).toBe(200);
    expect(await upstream.requests({ path: '/v2/', status: 401 })).toHaveLength(3); // the readiness poll's, then two
  });

  it('takes an image pushed with pushImage, a 20 MiB layer uploaded in chunks', async () => {
    const before = await upstream.mark();
    image = await pushImage(upstream.url, 'library/app', 'v1', { layers: [{ size: 20 * MiB }, { size: 300, gzip: true }], auth, chunkSize: 4 * MiB });
    expect(image.layers[0]!.size).toBeGreaterThan(20 * MiB);
    const patches = await upstream.requests({ method: 'PATCH', since: before });
    expect(patches.length).toBeGreaterThanOrEqual(6); // 20 MiB and a little more, in 4 MiB chunks, plus the small one's
    expect(patches.every((r) => r.status === 202)).toBe(true);

    const manifest = await fetchManifest(upstream.url, 'library/app', 'v1', { auth });
    expect(manifest.status).toBe(200);
    expect(manifest.headers.get('content-type')).toBe(OCI_MANIFEST);
    expect(manifest.headers.get('docker-content-digest')).toBe(image.manifestDigest);
    expect(manifest.body.equals(image.manifest)).toBe(true);
    expect(digestOf(manifest.body)).toBe(image.manifestDigest);

    // The layer is what it says: a tar whose one file has the asked size, and whose digests match.
    const big = await getDigest(`${upstream.url}/v2/library/app/blobs/${image.layers[0]!.digest}`, { authorization: upstream.authorization! });
    expect(big).toMatchObject({ status: 200, digest: image.layers[0]!.digest, length: image.layers[0]!.size });
    expect(image.layers[0]!.diffId).toBe(image.layers[0]!.digest); // uncompressed
    const small = await fetch(`${upstream.url}/v2/library/app/blobs/${image.layers[1]!.digest}`, { headers: { authorization: upstream.authorization! } });
    const tar = gunzipSync(Buffer.from(await small.arrayBuffer()));
    expect(digestOf(tar)).toBe(image.layers[1]!.diffId);
    expect(await filesOf(tar)).toEqual([{ name: 'layer-1.bin', size: 300 }]);

    const config = JSON.parse(image.config.bytes.toString()) as { architecture: string; os: string; rootfs: { diff_ids: string[] } };
    expect(config).toMatchObject({ architecture: 'amd64', os: 'linux', rootfs: { diff_ids: image.layers.map((l) => l.diffId) } });
  });

  it('counts the GETs it served', async () => {
    const before = await upstream.mark();
    for (let i = 0; i < 3; i++) expect((await fetchManifest(upstream.url, 'library/app', 'v1', { auth })).status).toBe(200);
    expect((await fetchManifest(upstream.url, 'library/app', 'v1', { auth, method: 'HEAD' })).status).toBe(200);
    const gets = await upstream.requests({ method: 'GET', path: '/v2/library/app/manifests/v1', since: before });
    expect(gets).toHaveLength(3);
    expect(await upstream.requests({ since: before })).toEqual([
      ...gets,
      { method: 'HEAD', path: '/v2/library/app/manifests/v1', uri: '/v2/library/app/manifests/v1', status: 200 },
    ]);
  });

  it('goes down on stop and serves the same manifest again on start, on the same port', async () => {
    const port = upstream.port;
    await upstream.stop();
    expect(upstream.running()).toBe(false);
    await expect(fetch(`${upstream.url}/v2/`, { signal: AbortSignal.timeout(2000) })).rejects.toThrow();
    await upstream.start();
    expect(upstream.port).toBe(port);
    const again = await fetchManifest(upstream.url, 'library/app', 'v1', { auth });
    expect(again.status).toBe(200);
    expect(again.body.equals(image.manifest)).toBe(true);
    // The log of both runs is kept.
    expect((await upstream.requests({ method: 'GET', path: '/v2/library/app/manifests/v1' })).length).toBeGreaterThanOrEqual(5);
  });

  it('moves a tag, and tags an index when asked', async () => {
    const moved = await moveTag(upstream.url, 'library/app', 'v1', { auth });
    expect(moved.manifestDigest).not.toBe(image.manifestDigest);
    expect((await fetchManifest(upstream.url, 'library/app', 'v1', { auth })).headers.get('docker-content-digest')).toBe(moved.manifestDigest);

    const multi = await pushImage(upstream.url, 'library/multi', 'latest', { layers: [{ size: 10 }], auth, platformIndex: true });
    const index = await fetchManifest(upstream.url, 'library/multi', 'latest', { auth });
    expect(index.headers.get('content-type')).toBe(OCI_INDEX);
    expect(index.body.equals(multi.index!.bytes)).toBe(true);
    expect(multi.tagDigest).toBe(multi.index!.digest);
    expect((await fetchManifest(upstream.url, 'library/multi', multi.manifestDigest, { auth })).status).toBe(200);
  });
});

async function filesOf(tar: Buffer): Promise<Array<{ name: string; size: number }>> {
  const files: Array<{ name: string; size: number }> = [];
  const reader = extract();
  const done = new Promise<void>((resolve, reject) => {
    reader.on('entry', (header, stream, next) => {
      files.push({ name: header.name, size: header.size });
      stream.on('end', () => next());
      stream.resume();
    });
    reader.on('finish', resolve);
    reader.on('error', reject);
  });
  reader.end(tar);
  await done;
  return files;
}
