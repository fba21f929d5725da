import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { digestOf, errorCode, makeImage, pushBlob, putManifest, startRegistry, type TestRegistry } from '../helpers.js';
import { getManifestOf, pushUpstreamImage, sleep, waitFor, startMirror, startUpstream, type TestMirror, type TestUpstream } from './support.js';

const MANIFEST_GET = /\/manifests\//;

describe('a root mirror (proxy.remoteurl)', () => {
  let upstream: TestUpstream;
  let mirror: TestMirror;
  let image: Awaited<ReturnType<typeof pushUpstreamImage>>;

  beforeAll(async () => {
    upstream = await startUpstream();
    image = await pushUpstreamImage(upstream, 'library/alpine', 'latest', 'alpine layer');
    mirror = await startMirror({ proxy: { remoteurl: upstream.url, ttl: '1h' }, http: { debug: { addr: '127.0.0.1:0', prometheus: { enabled: true } } } });
  });
  afterAll(async () => {
    await mirror?.close();
    await upstream?.close();
  });

  it('fetches a manifest by tag once, then serves it from the cache until ttl', async () => {
    const since = upstream.mark();
    const first = await getManifestOf(mirror.app, 'library/alpine', 'latest');
    expect(first.statusCode, first.body).toBe(200);
    expect(first.headers['docker-content-digest']).toBe(image.digest);
    expect(digestOf(first.rawPayload)).toBe(image.digest);
    const again = await getManifestOf(mirror.app, 'library/alpine', 'latest');
    const head = await getManifestOf(mirror.app, 'library/alpine', 'latest', 'HEAD');
    expect(again.body).toBe(first.body);
    expect(head.statusCode).toBe(200);
    expect(upstream.count('GET', MANIFEST_GET, since)).toBe(1);
    expect(upstream.count('HEAD', MANIFEST_GET, since)).toBe(0);
    // Cached content is ordinary content: the tag is listed, the repository in the catalog.
    expect((await mirror.app.inject({ url: '/v2/library/alpine/tags/list' })).json()).toEqual({ name: 'library/alpine', tags: ['latest'] });
    expect((await mirror.app.inject({ url: '/v2/_catalog' })).json().repositories).toContain('library/alpine');
  });

  it('fetches each blob once, serves the bytes it verified, and then holds them as its own', async () => {
    await getManifestOf(mirror.app, 'library/alpine', 'latest');
    const since = upstream.mark();
    for (const digest of [image.config, image.layer]) {
      const res = await mirror.app.inject({ url: `/v2/library/alpine/blobs/${digest}` });
      expect(res.statusCode).toBe(200);
      expect(digestOf(res.rawPayload)).toBe(digest);
      expect(res.headers['docker-content-digest']).toBe(digest);
      const again = await mirror.app.inject({ url: `/v2/library/alpine/blobs/${digest}` });
      expect(again.statusCode).toBe(200);
      expect(digestOf(again.rawPayload)).toBe(digest);
      await waitFor(async () => (await mirror.app.registry.index.linkedBlobSize('library/alpine', digest)) !== undefined, { what: 'the blob indexed' });
      expect(await mirror.app.registry.index.linkedBlobSize('library/alpine', digest)).toBe(res.rawPayload.length);
    }
    expect(upstream.count('GET', /\/blobs\//, since)).toBe(2);
    const metrics = await mirror.app.metrics!.registry.metrics();
    expect(metrics).toMatch(/registry_proxy_requests_total\{kind="blob",result="miss"\} 2/);
    expect(metrics).toMatch(/registry_proxy_requests_total\{kind="manifest",result="hit"\} [1-9]/);
  });

  it('answers a HEAD of a blob it does not hold from the upstream, without fetching it', async () => {
    const other = await pushUpstreamImage(upstream, 'library/headed', 'v1', 'only headed');
    const since = upstream.mark();
    const res = await mirror.app.inject({ method: 'HEAD', url: `/v2/library/headed/blobs/${other.layer}` });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-length']).toBe(String('only headed'.length));
    expect(upstream.count('HEAD', /\/blobs\//, since)).toBe(1);
    expect(upstream.count('GET', /\/blobs\//, since)).toBe(0);
    expect(await mirror.app.registry.index.linkedBlobSize('library/headed', other.layer)).toBeUndefined();
  });

  it('ten concurrent pulls of an uncached blob make one upstream fetch, and each gets every byte', async () => {
    const big = randomBytes(6 * 1024 * 1024);
    const pushed = await pushUpstreamImage(upstream, 'library/big', 'v1', big);
    const since = upstream.mark();
    const answers = await Promise.all(Array.from({ length: 10 }, () => mirror.app.inject({ url: `/v2/library/big/blobs/${pushed.layer}` })));
    for (const res of answers) {
      expect(res.statusCode).toBe(200);
      expect(res.rawPayload.length).toBe(big.length);
      expect(digestOf(res.rawPayload)).toBe(pushed.layer);
    }
    expect(upstream.count('GET', /\/blobs\//, since)).toBe(1);
    // Stored and indexed once verified (just after the last byte was released to the readers).
    await waitFor(async () => (await mirror.app.registry.index.linkedBlobSize('library/big', pushed.layer)) !== undefined, { what: 'the blob indexed' });
    expect(await mirror.app.registry.index.linkedBlobSize('library/big', pushed.layer)).toBe(big.length);
  });

  it('links a blob the store already holds only once the upstream confirms it has it there', async () => {
    // The same bytes pushed to a repository of the mirror's own... under a name the root mirror
    // covers, so that is done through the index here: library/alpine holds them already.
    const since = upstream.mark();
    const shared = await pushUpstreamImage(upstream, 'library/shares', 'v1', 'alpine layer');
    expect(shared.layer).toBe(image.layer);
    const res = await mirror.app.inject({ url: `/v2/library/shares/blobs/${image.layer}` });
    expect(res.statusCode).toBe(200);
    expect(digestOf(res.rawPayload)).toBe(image.layer);
    expect(upstream.count('HEAD', /\/blobs\//, since)).toBe(1);
    expect(upstream.count('GET', /\/blobs\//, since)).toBe(0);
    // A digest the upstream does not have in that repository is not lent out from another one.
    const missing = await mirror.app.inject({ url: `/v2/library/nothing-here/blobs/${image.layer}` });
    expect(missing.statusCode).toBe(404);
    expect(errorCode(missing)).toBe('BLOB_UNKNOWN');
    expect(await mirror.app.registry.index.linkedBlobSize('library/nothing-here', image.layer)).toBeUndefined();
  });

  it('answers 404 for what the upstream does not have', async () => {
    const manifest = await getManifestOf(mirror.app, 'library/alpine', 'no-such-tag');
    expect(manifest.statusCode).toBe(404);
    expect(errorCode(manifest)).toBe('MANIFEST_UNKNOWN');
    const blob = await mirror.app.inject({ url: `/v2/library/alpine/blobs/${digestOf('never pushed')}` });
    expect(blob.statusCode).toBe(404);
    expect(errorCode(blob)).toBe('BLOB_UNKNOWN');
    const repo = await getManifestOf(mirror.app, 'library/no-such-repo', 'latest');
    expect(repo.statusCode).toBe(404);
  });

  it('refuses pushes to what it mirrors (405 UNSUPPORTED) and writes nothing; deletes of cached content work', async () => {
    const start = await mirror.app.inject({ method: 'POST', url: '/v2/library/alpine/blobs/uploads/' });
    expect(start.statusCode).toBe(405);
    expect(errorCode(start)).toBe('UNSUPPORTED');
    const data = Buffer.from('pushed to a mirror');
    const monolithic = await mirror.app.inject({
      method: 'POST',
      url: `/v2/library/alpine/blobs/uploads/?digest=${digestOf(data)}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: data,
    });
    expect(monolithic.statusCode).toBe(405);
    const mount = await mirror.app.inject({ method: 'POST', url: `/v2/library/elsewhere/blobs/uploads/?mount=${image.layer}&from=library/alpine` });
    expect(mount.statusCode).toBe(405);
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: image.config, size: 1 }, layers: [] }));
    const put = await mirror.app.inject({
      method: 'PUT',
      url: '/v2/library/alpine/manifests/pushed',
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      payload: body,
    });
    expect(put.statusCode).toBe(405);
    expect(errorCode(put)).toBe('UNSUPPORTED');
    expect(await mirror.app.registry.index.tagDigest('library/alpine', 'pushed')).toBeUndefined();
    expect(await mirror.app.registry.index.linkedBlobSize('library/alpine', digestOf(data))).toBeUndefined();
    const evicted = await mirror.app.inject({ method: 'DELETE', url: `/v2/library/headed/manifests/v1` });
    expect(evicted.statusCode).toBe(404); // never cached: nothing to delete
    await getManifestOf(mirror.app, 'library/headed', 'v1');
    expect((await mirror.app.inject({ method: 'DELETE', url: `/v2/library/headed/manifests/v1` })).statusCode).toBe(202);
  });
});

describe('revalidation and failures (a short ttl)', () => {
  let upstream: TestUpstream;
  let mirror: TestMirror;

  beforeAll(async () => {
    upstream = await startUpstream();
    mirror = await startMirror({ proxy: { remoteurl: upstream.url, ttl: '1s' }, http: { debug: { addr: '127.0.0.1:0', prometheus: { enabled: true } } } });
  });
  afterEach(() => upstream.up());
  afterAll(async () => {
    await mirror?.close();
    await upstream?.close();
  });

  it('revalidates a tag with a HEAD after ttl, and follows it when it moved', async () => {
    const one = await pushUpstreamImage(upstream, 'team/app', 'v1', 'one');
    let since = upstream.mark();
    expect((await getManifestOf(mirror.app, 'team/app', 'v1')).headers['docker-content-digest']).toBe(one.digest);
    const two = await pushUpstreamImage(upstream, 'team/app', 'v1', 'two');
    // Within ttl: the cached digest, and the upstream not asked.
    expect((await getManifestOf(mirror.app, 'team/app', 'v1')).headers['docker-content-digest']).toBe(one.digest);
    expect(upstream.count('GET', MANIFEST_GET, since)).toBe(1);
    await sleep(1100);
    since = upstream.mark();
    const moved = await getManifestOf(mirror.app, 'team/app', 'v1');
    expect(moved.headers['docker-content-digest']).toBe(two.digest);
    expect(upstream.count('HEAD', MANIFEST_GET, since)).toBe(1);
    expect(upstream.count('GET', new RegExp(`/manifests/${two.digest}$`), since)).toBe(1);
    // The old image stays (by digest) for whoever pulled it; the tag follows the upstream.
    expect((await getManifestOf(mirror.app, 'team/app', one.digest)).statusCode).toBe(200);
    await sleep(1100);
    since = upstream.mark();
    expect((await getManifestOf(mirror.app, 'team/app', 'v1')).headers['docker-content-digest']).toBe(two.digest);
    expect(upstream.count('HEAD', MANIFEST_GET, since)).toBe(1);
    expect(upstream.count('GET', MANIFEST_GET, since)).toBe(0);
    // Moved back to an image the cache holds: the tag follows with a HEAD alone.
    const back = await pushUpstreamImage(upstream, 'team/app', 'v1', 'one');
    expect(back.digest).toBe(one.digest);
    await sleep(1100);
    since = upstream.mark();
    expect((await getManifestOf(mirror.app, 'team/app', 'v1')).headers['docker-content-digest']).toBe(one.digest);
    expect(upstream.count('HEAD', MANIFEST_GET, since)).toBe(1);
    expect(upstream.count('GET', MANIFEST_GET, since)).toBe(0);
    const metrics = await mirror.app.metrics!.registry.metrics();
    expect(metrics).toMatch(/registry_proxy_requests_total\{kind="manifest",result="updated"\} 2/);
    expect(metrics).toMatch(/registry_proxy_requests_total\{kind="manifest",result="revalidated"\} 1/);
  });

  it('never asks again for a manifest by digest or a blob', async () => {
    const pushed = await pushUpstreamImage(upstream, 'team/pinned', 'v1', 'pinned');
    expect((await getManifestOf(mirror.app, 'team/pinned', pushed.digest)).statusCode).toBe(200);
    expect((await mirror.app.inject({ url: `/v2/team/pinned/blobs/${pushed.layer}` })).statusCode).toBe(200);
    await sleep(1100);
    const since = upstream.mark();
    expect((await getManifestOf(mirror.app, 'team/pinned', pushed.digest)).statusCode).toBe(200);
    expect((await mirror.app.inject({ url: `/v2/team/pinned/blobs/${pushed.layer}` })).statusCode).toBe(200);
    expect(upstream.mark()).toBe(since);
  });

  it('serves what it holds while the upstream is down, and 503 with Retry-After for the rest', async () => {
    const pushed = await pushUpstreamImage(upstream, 'team/kept', 'v1', 'kept');
    const notPulled = await pushUpstreamImage(upstream, 'team/kept', 'v2', 'not pulled');
    expect((await getManifestOf(mirror.app, 'team/kept', 'v1')).statusCode).toBe(200);
    expect((await mirror.app.inject({ url: `/v2/team/kept/blobs/${pushed.layer}` })).statusCode).toBe(200);
    await sleep(1100);
    upstream.down();
    const stale = await getManifestOf(mirror.app, 'team/kept', 'v1');
    expect(stale.statusCode).toBe(200);
    expect(stale.headers['docker-content-digest']).toBe(pushed.digest);
    expect((await mirror.app.inject({ url: `/v2/team/kept/blobs/${pushed.layer}` })).statusCode).toBe(200);
    expect(mirror.lines.some((l) => l.msg === 'upstream unavailable: serving the cached manifest' && l.repository === 'team/kept')).toBe(true);
    for (const res of [
      await getManifestOf(mirror.app, 'team/kept', 'v2'),
      await mirror.app.inject({ url: `/v2/team/kept/blobs/${notPulled.layer}` }),
      await getManifestOf(mirror.app, 'team/never', 'latest'),
    ]) {
      expect(res.statusCode).toBe(503);
      expect(errorCode(res)).toBe('UNAVAILABLE');
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    }
    const metrics = await mirror.app.metrics!.registry.metrics();
    expect(metrics).toMatch(/registry_proxy_requests_total\{kind="manifest",result="stale"\} [1-9]/);
    expect(metrics).toMatch(/registry_proxy_requests_total\{kind="manifest",result="unavailable"\} [1-9]/);
    expect(metrics).toMatch(/registry_proxy_requests_total\{kind="blob",result="unavailable"\} [1-9]/);
    upstream.up();
    // Back up: the uncached tag is fetched.
    expect((await getManifestOf(mirror.app, 'team/kept', 'v2')).statusCode).toBe(200);
  });

  it('serves a held tag that the upstream no longer has or refuses, and checks it again only after a while', async () => {
    const pushed = await pushUpstreamImage(upstream, 'team/gone', 'v1', 'gone');
    expect((await getManifestOf(mirror.app, 'team/gone', 'v1')).statusCode).toBe(200);
    expect((await upstream.registry.app.inject({ method: 'DELETE', url: '/v2/team/gone/manifests/v1' })).statusCode).toBe(202);
    await sleep(1100);
    let since = upstream.mark();
    const held = await getManifestOf(mirror.app, 'team/gone', 'v1');
    expect(held.statusCode).toBe(200);
    expect(held.headers['docker-content-digest']).toBe(pushed.digest);
    expect(mirror.lines.some((l) => l.msg === 'upstream refused the check: serving the cached manifest' && l.repository === 'team/gone')).toBe(true);
    // Not asked again on the next pull: a failed check waits (here min(ttl, 10 s) = 1 s) before the next.
    expect((await getManifestOf(mirror.app, 'team/gone', 'v1')).statusCode).toBe(200);
    expect(upstream.count('HEAD', MANIFEST_GET, since)).toBe(1);
    // An upstream refusing the credentials: the same.
    upstream.failWith(401);
    await sleep(1100);
    since = upstream.mark();
    expect((await getManifestOf(mirror.app, 'team/gone', 'v1')).statusCode).toBe(200);
    // Never held: the upstream's 404 is the answer.
    upstream.up();
    expect((await getManifestOf(mirror.app, 'team/gone', 'v2')).statusCode).toBe(404);
  });

  it('treats 429 and 5xx from the upstream as unavailable: the cached is served, the rest is 503', async () => {
    const pushed = await pushUpstreamImage(upstream, 'team/limited', 'v1', 'limited');
    expect((await getManifestOf(mirror.app, 'team/limited', 'v1')).statusCode).toBe(200);
    await sleep(1100);
    for (const status of [429, 500, 503]) {
      upstream.failWith(status);
      const cached = await getManifestOf(mirror.app, 'team/limited', 'v1');
      expect(cached.statusCode).toBe(200);
      expect(cached.headers['docker-content-digest']).toBe(pushed.digest);
      const uncached = await mirror.app.inject({ url: `/v2/team/limited/blobs/${pushed.layer}` });
      expect(uncached.statusCode).toBe(503);
      expect(uncached.headers['retry-after']).toBeDefined();
    }
  });
});

describe('prefix rules (proxy.rules)', () => {
  let upstream: TestUpstream;
  let mirror: TestMirror;

  beforeAll(async () => {
    upstream = await startUpstream();
    mirror = await startMirror({ proxy: { rules: [{ prefix: 'hub', remoteurl: upstream.url }] } });
  });
  afterAll(async () => {
    await mirror?.close();
    await upstream?.close();
  });

  it('serves <prefix>/<path> from <path> upstream, and the rest of the registry as always', async () => {
    const pushed = await pushUpstreamImage(upstream, 'library/nginx', '1.27', 'nginx');
    const since = upstream.mark();
    const res = await getManifestOf(mirror.app, 'hub/library/nginx', '1.27');
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['docker-content-digest']).toBe(pushed.digest);
    expect(upstream.count('GET', /^\/v2\/library\/nginx\/manifests\/1\.27$/, since)).toBe(1);
    const blob = await mirror.app.inject({ url: `/v2/hub/library/nginx/blobs/${pushed.layer}` });
    expect(digestOf(blob.rawPayload)).toBe(pushed.layer);
    // Outside the prefix: the registry's own repositories, pushed and pulled as always.
    const own = await makeImage(mirror.app, 'mine/app');
    expect((await putManifest(mirror.app, 'mine/app', 'v1', own)).statusCode).toBe(201);
    expect((await getManifestOf(mirror.app, 'mine/app', 'v1')).statusCode).toBe(200);
    expect((await getManifestOf(mirror.app, 'library/nginx', '1.27')).statusCode).toBe(404);
    // The prefix alone names no upstream repository: it is an ordinary name.
    expect((await mirror.app.inject({ method: 'POST', url: '/v2/hub/blobs/uploads/' })).statusCode).toBe(202);
    const refused = await mirror.app.inject({ method: 'POST', url: '/v2/hub/library/nginx/blobs/uploads/' });
    expect(refused.statusCode).toBe(405);
    expect(upstream.count('GET', /\/v2\/mine\//, since)).toBe(0);
  });
});

describe('upstream authentication', () => {
  let registries: TestRegistry[] = [];
  afterAll(async () => {
    for (const r of registries) await r.destroy();
    registries = [];
  });

  it('sends Basic credentials to an htpasswd upstream; without them the repository is unknown; they never reach a log line', async () => {
    const { writeHtpasswd } = await import('../http/auth-support.js');
    const dir = (await import('../helpers.js')).tempDir;
    const upstream = await startUpstream({ auth: { htpasswd: { path: await writeHtpasswd(await dir()) } } });
    try {
      const pushedBy = upstream.registry.app;
      const { PASSWORDS, pushImageAs, basic } = await import('../http/auth-support.js');
      const pushed = await pushImageAs(pushedBy, basic('alice'), 'private/app');
      expect(pushed.res.statusCode).toBe(201);
      const mirror = await startMirror({ proxy: { remoteurl: upstream.url, username: 'alice', password: PASSWORDS.alice! } });
      const anonymous = await startMirror({ proxy: { remoteurl: upstream.url } });
      try {
        const res = await getManifestOf(mirror.app, 'private/app', 'v1');
        expect(res.statusCode, res.body).toBe(200);
        const refused = await getManifestOf(anonymous.app, 'private/app', 'v1');
        expect(refused.statusCode).toBe(404);
        expect(errorCode(refused)).toBe('NAME_UNKNOWN');
        // Basic is sent at once after the first challenge: one 401, then none.
        const since = upstream.mark();
        await getManifestOf(mirror.app, 'private/app', pushed.manifest!.digest);
        expect(upstream.proxy.requests.slice(since).every((r) => r.headers.authorization?.startsWith('Basic '))).toBe(true);
        expect(mirror.text()).not.toContain(PASSWORDS.alice);
        expect(mirror.text()).not.toContain(Buffer.from(`alice:${PASSWORDS.alice}`).toString('base64'));
      } finally {
        await mirror.close();
        await anonymous.close();
      }
    } finally {
      await upstream.close();
    }
  });

  it("follows Docker's token flow: the realm from the challenge, the repository's scope, one token while it lasts", async () => {
    const { writeHtpasswd, PASSWORDS, pushImageAs, basic } = await import('../http/auth-support.js');
    const { tempDir } = await import('../helpers.js');
    const dir = await tempDir();
    const upstream = await startUpstream({
      auth: {
        htpasswd: { path: await writeHtpasswd(dir) },
        tokenserver: { enabled: true, issuer: 'upstream', service: 'upstream-registry', key: `${dir}/key.pem`, expiration: '5m' },
      },
      access: { repositories: { 'private/**': { users: { alice: ['pull', 'push'] } } } },
    });
    try {
      const pushed = await pushImageAs(upstream.registry.app, basic('alice'), 'private/tokened');
      expect(pushed.res.statusCode).toBe(201);
      const mirror = await startMirror({ proxy: { remoteurl: upstream.url, username: 'alice', password: PASSWORDS.alice! } });
      try {
        const since = upstream.mark();
        const res = await getManifestOf(mirror.app, 'private/tokened', 'v1');
        expect(res.statusCode, res.body).toBe(200);
        const doc = res.json() as { layers: Array<{ digest: string }>; config: { digest: string } };
        for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) {
          expect((await mirror.app.inject({ url: `/v2/private/tokened/blobs/${d}` })).statusCode).toBe(200);
        }
        const tokenRequests = upstream.proxy.requests.slice(since).filter((r) => r.path.startsWith('/auth/token'));
        expect(tokenRequests).toHaveLength(1);
        expect(tokenRequests[0]!.query.get('scope')).toBe('repository:private/tokened:pull');
        expect(tokenRequests[0]!.query.get('service')).toBe('upstream-registry');
        expect(tokenRequests[0]!.headers.authorization).toBe(basic('alice'));
        const v2 = upstream.proxy.requests.slice(since).filter((r) => r.path.startsWith('/v2/'));
        expect(v2.slice(1).every((r) => r.headers.authorization?.startsWith('Bearer '))).toBe(true);
        expect(mirror.text()).not.toContain(PASSWORDS.alice);
        expect(mirror.text()).not.toMatch(/Bearer ey/);
      } finally {
        await mirror.close();
      }
    } finally {
      await upstream.close();
    }
  });
});

describe('the upstream is trusted for nothing but its content', () => {
  let reg: TestRegistry | undefined;
  afterAll(async () => reg?.destroy());

  it('anonymous pulls of a proxied repository follow the access rules like any other', async () => {
    const { writeHtpasswd, basic } = await import('../http/auth-support.js');
    const { tempDir } = await import('../helpers.js');
    const upstream = await startUpstream();
    try {
      await pushUpstreamImage(upstream, 'library/ruled', 'v1', 'ruled');
      const mirror = await startMirror({
        proxy: { remoteurl: upstream.url },
        auth: { htpasswd: { path: await writeHtpasswd(await tempDir()) } },
        access: { repositories: { 'library/**': { users: { alice: ['pull'] } } } },
      });
      try {
        const since = upstream.mark();
        expect((await getManifestOf(mirror.app, 'library/ruled', 'v1')).statusCode).toBe(401);
        expect((await getManifestOf(mirror.app, 'library/ruled', 'v1', 'GET', basic('bob'))).statusCode).toBe(403);
        // Refused before the upstream is asked.
        expect(upstream.mark()).toBe(since);
        expect((await getManifestOf(mirror.app, 'library/ruled', 'v1', 'GET', basic('alice'))).statusCode).toBe(200);
        // alice may pull, not push: a push to the mirror is refused by the rules before the cache says 405.
        expect((await mirror.app.inject({ method: 'POST', url: '/v2/library/ruled/blobs/uploads/', headers: { authorization: basic('alice') } })).statusCode).toBe(403);
      } finally {
        await mirror.close();
      }
    } finally {
      await upstream.close();
    }
  });

  it('a blob whose bytes do not have its digest is never indexed, and its reader is cut off', async () => {
    const { createServer } = await import('node:http');
    const real = Buffer.from('the real bytes');
    const digest = digestOf(real);
    const fake = Buffer.from('other bytes!!!'); // same length: only the digest tells
    const server = createServer((request, response) => {
      if (request.url === '/v2/') return void response.writeHead(200).end('{}');
      if (request.url === `/v2/library/liar/blobs/${digest}`) {
        return void response.writeHead(200, { 'content-length': String(fake.length), 'content-type': 'application/octet-stream' }).end(fake);
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const mirror = await startMirror({ proxy: { remoteurl: `http://127.0.0.1:${port}` } });
    try {
      let failed = false;
      try {
        const res = await mirror.app.inject({ url: `/v2/library/liar/blobs/${digest}` });
        failed = res.statusCode !== 200 || res.rawPayload.length < fake.length;
        expect(res.rawPayload.equals(fake)).toBe(false);
      } catch {
        failed = true;
      }
      expect(failed).toBe(true);
      await sleep(100);
      expect(await mirror.app.registry.index.linkedBlobSize('library/liar', digest)).toBeUndefined();
      expect(mirror.lines.some((l) => l.msg === 'pull-through fetch of a blob failed')).toBe(true);
    } finally {
      await mirror.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('an upstream that fails before the first byte of a blob gets a plain 503: none of the blob\'s headers', async () => {
    const { createServer } = await import('node:http');
    const digest = digestOf('never arrives');
    const server = createServer((request, response) => {
      if (request.url === `/v2/library/cut/blobs/${digest}`) {
        response.writeHead(200, { 'content-length': '13' });
        response.flushHeaders();
        setTimeout(() => response.socket?.destroy(), 20);
        return;
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const mirror = await startMirror({ proxy: { remoteurl: `http://127.0.0.1:${port}` } });
    try {
      const res = await mirror.app.inject({ url: `/v2/library/cut/blobs/${digest}` });
      expect(res.statusCode).toBe(503);
      expect(errorCode(res)).toBe('UNAVAILABLE');
      expect(res.headers['cache-control']).toBeUndefined();
      expect(res.headers['docker-content-digest']).toBeUndefined();
      expect(res.headers.etag).toBeUndefined();
      expect(res.headers['retry-after']).toBeDefined();
      expect(mirror.lines.some((l) => l.level >= 50)).toBe(false);
    } finally {
      await mirror.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('follows a redirect to its own host, and none to another host over http', async () => {
    const { createServer } = await import('node:http');
    const bytes = Buffer.from('redirected blob');
    const digest = digestOf(bytes);
    const elsewhere: string[] = [];
    const other = createServer((request, response) => {
      elsewhere.push(request.url ?? '');
      response.writeHead(200, { 'content-length': String(bytes.length) }).end(bytes);
    });
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    const otherPort = (other.address() as { port: number }).port;
    const server = createServer((request, response) => {
      if (request.url === `/v2/library/moved/blobs/${digest}`) return void response.writeHead(307, { location: `/storage/${digest}` }).end();
      if (request.url === `/storage/${digest}`) {
        expect(request.headers.authorization).toBeUndefined();
        return void response.writeHead(200, { 'content-length': String(bytes.length) }).end(bytes);
      }
      if (request.url === `/v2/library/away/blobs/${digest}`) {
        return void response.writeHead(307, { location: `http://localhost:${otherPort}/steal/${digest}` }).end();
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const mirror = await startMirror({ proxy: { remoteurl: `http://127.0.0.1:${port}` } });
    try {
      const followed = await mirror.app.inject({ url: `/v2/library/moved/blobs/${digest}` });
      expect(followed.statusCode).toBe(200);
      expect(digestOf(followed.rawPayload)).toBe(digest);
      const refused = await mirror.app.inject({ url: `/v2/library/away/blobs/${digest}` });
      expect(refused.statusCode).toBe(503);
      expect(elsewhere).toEqual([]);
      expect(mirror.lines.some((l) => typeof l.reason === 'string' && l.reason.includes('neither https nor the upstream'))).toBe(true);
    } finally {
      await mirror.close();
      await new Promise((resolve) => server.close(resolve));
      await new Promise((resolve) => other.close(resolve));
    }
  });
});

describe('a registry without a proxy section', () => {
  it('takes pushes to Docker Hub\'s names as its own, and an unknown tag is simply unknown', async () => {
    const reg = await startRegistry();
    try {
      const digest = await pushBlob(reg.app, 'library/alpine', 'own');
      expect((await reg.app.inject({ url: `/v2/library/alpine/blobs/${digest}` })).statusCode).toBe(200);
      expect((await getManifestOf(reg.app, 'library/alpine', 'latest')).statusCode).toBe(404);
    } finally {
      await reg.destroy();
    }
  });
});

describe('a mirror in read-only mode (storage.maintenance.readonly)', () => {
  it('serves what it holds and fetches nothing it could not keep', async () => {
    const upstream = await startUpstream();
    const { tempDir } = await import('../helpers.js');
    const { buildApp } = await import('../../src/app.js');
    const { loadConfig } = await import('../../src/config/config.js');
    const root = await tempDir();
    const configOf = (readonly: boolean) =>
      loadConfig({ env: {}, overrides: { proxy: { remoteurl: upstream.url, ttl: '1ms' }, storage: { filesystem: { rootdirectory: root }, maintenance: { readonly: { enabled: readonly } } } } });
    try {
      const held = await pushUpstreamImage(upstream, 'library/held', 'v1', 'held');
      await pushUpstreamImage(upstream, 'library/unheld', 'v1', 'unheld');
      const writable = await buildApp(configOf(false), { logger: false });
      expect((await getManifestOf(writable, 'library/held', 'v1')).statusCode).toBe(200);
      expect((await writable.inject({ url: `/v2/library/held/blobs/${held.layer}` })).statusCode).toBe(200);
      await waitFor(async () => (await writable.registry.index.linkedBlobSize('library/held', held.layer)) !== undefined, { what: 'the blob indexed' });
      await writable.close();
      const readOnly = await buildApp(configOf(true), { logger: false });
      try {
        const since = upstream.mark();
        expect((await getManifestOf(readOnly, 'library/held', 'v1')).statusCode).toBe(200);
        expect((await readOnly.inject({ url: `/v2/library/held/blobs/${held.layer}` })).statusCode).toBe(200);
        const miss = await getManifestOf(readOnly, 'library/unheld', 'v1');
        expect(miss.statusCode).toBe(503);
        expect(miss.json().errors[0].message).toContain('read-only');
        expect((await readOnly.inject({ url: `/v2/library/held/blobs/${held.config}` })).statusCode).toBe(503);
        expect(upstream.mark()).toBe(since);
      } finally {
        await readOnly.close();
      }
    } finally {
      await upstream.close();
      const { rm } = await import('node:fs/promises');
      await rm(root, { recursive: true, force: true });
    }
  });
});

describe('what the upstream answers that the cache cannot take', () => {
  const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
  const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
  const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
  const json = (doc: unknown) => Buffer.from(JSON.stringify(doc));
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  const amd = json({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length }, layers: [] });
  const index = json({
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: [{ mediaType: OCI_MANIFEST, digest: digestOf(amd), size: amd.length, platform: { os: 'linux', architecture: 'amd64' } }],
  });
  const schema1 = json({ schemaVersion: 1, name: 'old/one', tag: 'v1', fsLayers: [], history: [] });
  let server: import('node:http').Server;
  let mirror: TestMirror;
  const asked: string[] = [];

  beforeAll(async () => {
    const { createServer } = await import('node:http');
    const answers: Record<string, { type: string; body: Buffer; digest?: string }> = {
      '/v2/library/multi/manifests/v1': { type: OCI_INDEX, body: index },
      [`/v2/library/multi/manifests/${digestOf(amd)}`]: { type: OCI_MANIFEST, body: amd },
      '/v2/library/old/manifests/v1': { type: 'application/vnd.docker.distribution.manifest.v1+prettyjws', body: schema1 },
      '/v2/library/lying/manifests/v1': { type: OCI_MANIFEST, body: amd, digest: digestOf('something else') },
    };
    server = createServer((request, response) => {
      asked.push(`${request.method} ${request.url}`);
      const answer = answers[request.url ?? ''];
      if (!answer) return void response.writeHead(404).end();
      response.writeHead(200, { 'content-type': answer.type, 'docker-content-digest': answer.digest ?? digestOf(answer.body), 'content-length': String(answer.body.length) });
      response.end(request.method === 'HEAD' ? undefined : answer.body);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    mirror = await startMirror({ proxy: { remoteurl: `http://127.0.0.1:${(server.address() as { port: number }).port}` } });
  });
  afterAll(async () => {
    await mirror?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it("answers a client that cannot take an index with its linux/amd64 image, fetching that child", async () => {
    const res = await mirror.app.inject({ url: '/v2/library/multi/manifests/v1', headers: { accept: `${OCI_MANIFEST}, ${DOCKER_MANIFEST}` } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['docker-content-digest']).toBe(digestOf(amd));
    expect(asked).toContain(`GET /v2/library/multi/manifests/${digestOf(amd)}`);
    // The index itself is cached too, for the clients that take it.
    const whole = await mirror.app.inject({ url: '/v2/library/multi/manifests/v1', headers: { accept: OCI_INDEX } });
    expect(whole.headers['docker-content-digest']).toBe(digestOf(index));
  });

  it('a manifest this registry does not store (Docker schema 1) is 404 saying so, and nothing is cached', async () => {
    const res = await mirror.app.inject({ url: '/v2/library/old/manifests/v1' });
    expect(res.statusCode).toBe(404);
    expect(errorCode(res)).toBe('MANIFEST_UNKNOWN');
    expect(res.json().errors[0].message).toContain('cannot be stored here');
    expect(await mirror.app.registry.index.tagDigest('library/old', 'v1')).toBeUndefined();
  });

  it('a manifest whose bytes are not the digest the upstream says is refused (503), not cached', async () => {
    const res = await mirror.app.inject({ url: '/v2/library/lying/manifests/v1' });
    expect(res.statusCode).toBe(503);
    expect(errorCode(res)).toBe('UNAVAILABLE');
    expect(await mirror.app.registry.index.tagDigest('library/lying', 'v1')).toBeUndefined();
    expect(mirror.lines.some((l) => typeof l.reason === 'string' && l.reason.includes('does not have the digest'))).toBe(true);
  });
});

describe('the bound on fetches in flight', () => {
  it('refuses a fetch past the bound with 503 and Retry-After, and takes one again once a fetch ends', async () => {
    const { createServer } = await import('node:http');
    const bytes = Buffer.from('slow blob');
    const digest = digestOf(bytes);
    const other = digestOf('other blob');
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const server = createServer((request, response) => {
      if (request.url === `/v2/library/slow/blobs/${digest}`) {
        void gate.then(() => response.writeHead(200, { 'content-length': String(bytes.length) }).end(bytes));
        return;
      }
      response.writeHead(404).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const mirror = await startMirror({ proxy: { remoteurl: `http://127.0.0.1:${(server.address() as { port: number }).port}` } });
    try {
      const { PullThroughCache } = await import('../../src/proxy/cache.js');
      const { loadConfig } = await import('../../src/config/config.js');
      const { Digest } = await import('../../src/oci/digest.js');
      const config = loadConfig({ env: {}, overrides: { proxy: { remoteurl: `http://127.0.0.1:${(server.address() as { port: number }).port}` } } }).proxy!;
      const quiet = { warn: () => undefined, info: () => undefined };
      const cache = new PullThroughCache({ registry: mirror.app.registry, config, log: quiet, maxFetches: 1 });
      const route = (await cache.route('library/slow'))!;
      const first = cache.blob('library/slow', Digest.parse(digest), route, quiet);
      await sleep(50);
      // The same blob joins the fetch in flight; another is refused.
      const joined = cache.blob('library/slow', Digest.parse(digest), route, quiet);
      await expect(cache.blob('library/slow', Digest.parse(other), route, quiet)).rejects.toMatchObject({ code: 'UNAVAILABLE', status: 503, retryAfter: 5 });
      release();
      const [a, b] = await Promise.all([first, joined]);
      expect(a).toBe(b);
      await a!.stored;
      await sleep(20);
      // Over: a new fetch may start (this one the upstream does not have).
      await expect(cache.blob('library/slow', Digest.parse(other), route, quiet)).rejects.toMatchObject({ code: 'BLOB_UNKNOWN' });
      await cache.close();
    } finally {
      await mirror.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
