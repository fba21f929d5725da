// The web UI's API and files: sign-in sessions (HttpOnly cookie, CSRF on writes, no writes from
// other origins), the access rules on every page, what the pages are given, and the files' CSP.
import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { OCI_INDEX, OCI_MANIFEST, digestOf, makeImage, manifestOf, putManifest, startRegistry, tempDir, type TestRegistry } from '../helpers.js';
import { basic, writeHtpasswd } from './auth-support.js';
import { UiSessions } from '../../src/auth/ui-sessions.js';

let reg: TestRegistry | undefined;
afterEach(async () => {
  await reg?.destroy();
  reg = undefined;
});

const ACCESS = {
  repositories: {
    'team/**': { users: { alice: ['pull', 'push', 'delete'], bob: ['pull'] } },
    'carol/**': { users: { carol: ['pull', 'push'] } },
  },
} as const;

async function withUsers(): Promise<TestRegistry> {
  const dir = await tempDir();
  reg = await startRegistry({ auth: { htpasswd: { path: await writeHtpasswd(dir) } }, access: ACCESS as never }, dir);
  return reg;
}

/** Pushes an image with a config that has labels, history and an entrypoint; returns its digest. */
async function pushImage(app: FastifyInstance, repo: string, tag: string, authorization?: string): Promise<string> {
  const headers = authorization ? { authorization } : {};
  const config = Buffer.from(
    JSON.stringify({
      architecture: 'arm64',
      os: 'linux',
      variant: 'v8',
      created: '2026-01-02T03:04:05Z',
      config: { Entrypoint: ['/bin/app'], Cmd: ['--serve'], Labels: { 'org.opencontainers.image.title': '<img src=x onerror=alert(1)>' } },
      history: [{ created: '2026-01-02T03:04:05Z', created_by: 'COPY app /bin/app' }],
    }),
  );
  const layer = Buffer.from(`layer of ${repo}:${tag}`);
  for (const blob of [config, layer]) {
    const res = await app.inject({ method: 'POST', url: `/v2/${repo}/blobs/uploads/?digest=${digestOf(blob)}`, headers: { ...headers, 'content-type': 'application/octet-stream' }, payload: blob });
    expect(res.statusCode).toBe(201);
  }
  const manifest = manifestOf(
    {
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: digestOf(layer), size: layer.length }],
    },
    OCI_MANIFEST,
  );
  const put = await app.inject({ method: 'PUT', url: `/v2/${repo}/manifests/${tag}`, headers: { ...headers, 'content-type': OCI_MANIFEST }, payload: manifest.body });
  expect(put.statusCode).toBe(201);
  return manifest.digest;
}

/** Signs in through the UI; returns the cookie to send and the CSRF value. */
async function signIn(app: FastifyInstance, user: string, password?: string): Promise<{ cookie: string; csrf: string; res: LightMyRequestResponse }> {
  const res = await app.inject({
    method: 'POST',
    url: '/ui/api/login',
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ username: user, password: password ?? `${user}-pw` }),
  });
  const setCookie = String(res.headers['set-cookie'] ?? '');
  return { cookie: setCookie.split(';')[0]!, csrf: res.statusCode === 200 ? (res.json() as { csrf: string }).csrf : '', res };
}

describe('the UI API without auth', () => {
  it('lists, searches and pages repositories with their usage', async () => {
    reg = await startRegistry();
    for (const repo of ['apps/web', 'apps/api', 'tools/lint']) await pushImage(reg.app, repo, 'v1');
    const all = (await reg.app.inject({ method: 'GET', url: '/ui/api/repositories' })).json() as { repositories: Array<{ name: string }> };
    expect(all.repositories.map((r) => r.name)).toEqual(['apps/api', 'apps/web', 'tools/lint']);
    const found = (await reg.app.inject({ method: 'GET', url: '/ui/api/repositories?q=APPS' })).json() as { repositories: Array<{ name: string }> };
    expect(found.repositories.map((r) => r.name)).toEqual(['apps/api', 'apps/web']);
    const first = (await reg.app.inject({ method: 'GET', url: '/ui/api/repositories?n=2' })).json() as { repositories: Array<{ name: string }>; next: string };
    expect(first.repositories.map((r) => r.name)).toEqual(['apps/api', 'apps/web']);
    const second = (await reg.app.inject({ method: 'GET', url: `/ui/api/repositories?n=2&last=${first.next}` })).json() as { repositories: Array<{ name: string }>; next?: string };
    expect(second.repositories.map((r) => r.name)).toEqual(['tools/lint']);
    expect(second.next).toBeUndefined();
    const usage = (await reg.app.inject({ method: 'GET', url: '/ui/api/usage' })).json() as { repositories: Array<{ name: string; manifests: number; bytes: number }> };
    expect(usage.repositories.map((u) => [u.name, u.manifests])).toEqual([
      ['apps/api', 1],
      ['apps/web', 1],
      ['tools/lint', 1],
    ]);
    expect((await reg.app.inject({ method: 'GET', url: '/ui/api/repositories?n=0' })).statusCode).toBe(400);
  });

  it('gives a repository\'s tags and an image\'s config, layers, platforms and referrers', async () => {
    reg = await startRegistry();
    const { app } = reg;
    const repo = 'team/app';
    const digest = await pushImage(app, repo, 'v1');
    const tags = (await app.inject({ method: 'GET', url: `/ui/api/repository/${repo}/tags` })).json();
    expect(tags).toEqual({
      repository: repo,
      pull: 'localhost:80/team/app',
      tags: [{ tag: 'v1', digest, mediaType: OCI_MANIFEST, artifactType: null, size: `layer of ${repo}:v1`.length, pushedAt: expect.any(Number) }],
    });
    const image = (await app.inject({ method: 'GET', url: `/ui/api/repository/${repo}/manifest/${digest}` })).json();
    expect(image).toMatchObject({
      repository: repo,
      digest,
      kind: 'image',
      tags: ['v1'],
      pull: `localhost:80/${repo}@${digest}`,
      config: {
        os: 'linux',
        architecture: 'arm64',
        variant: 'v8',
        created: '2026-01-02T03:04:05Z',
        entrypoint: ['/bin/app'],
        cmd: ['--serve'],
        // As data: it is the page's business to show it as text.
        labels: { 'org.opencontainers.image.title': '<img src=x onerror=alert(1)>' },
        history: [{ created: '2026-01-02T03:04:05Z', createdBy: 'COPY app /bin/app' }],
      },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', size: `layer of ${repo}:v1`.length }],
      children: [],
      referrers: [],
    });
    // A signature referring to it, and an index over it.
    const sig = await makeImage(app, repo, { layer: 'sig', extra: { artifactType: 'application/vnd.dev.sigstore.bundle+json', subject: { mediaType: OCI_MANIFEST, digest, size: 1 } } });
    expect((await putManifest(app, repo, sig.digest, sig)).statusCode).toBe(201);
    const list = manifestOf({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest, size: image.manifestSize, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }] }, OCI_INDEX);
    expect((await putManifest(app, repo, 'multi', list)).statusCode).toBe(201);
    const withReferrer = (await app.inject({ method: 'GET', url: `/ui/api/repository/${repo}/manifest/${digest}` })).json();
    expect(withReferrer.referrers).toEqual([{ digest: sig.digest, mediaType: OCI_MANIFEST, size: sig.body.length, artifactType: 'application/vnd.dev.sigstore.bundle+json', annotations: {} }]);
    expect(withReferrer.parents).toEqual([list.digest]);
    const index = (await app.inject({ method: 'GET', url: `/ui/api/repository/${repo}/manifest/${list.digest}` })).json();
    expect(index).toMatchObject({ kind: 'index', tags: ['multi'], config: null, layers: [], children: [{ digest, platform: 'linux/arm64/v8' }] });
  });

  it('answers errors for what is not there, and deletes tags and manifests', async () => {
    reg = await startRegistry();
    const { app } = reg;
    const digest = await pushImage(app, 'team/app', 'v1');
    await pushImage(app, 'team/app', 'v2');
    expect((await app.inject({ method: 'GET', url: '/ui/api/repository/none/here/tags' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: `/ui/api/repository/team/app/manifest/${digestOf('nothing')}` })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/ui/api/repository/team/app/manifest/not-a-digest' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'GET', url: '/ui/api/repository/BAD..name/tags' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: '/ui/api/repository/team/app/tags' })).statusCode).toBe(405);
    expect((await app.inject({ method: 'DELETE', url: '/ui/api/repository/team/app/tag/v2' })).statusCode).toBe(204);
    expect((await app.inject({ method: 'GET', url: '/v2/team/app/manifests/v2' })).statusCode).toBe(404);
    expect((await app.inject({ method: 'DELETE', url: `/ui/api/repository/team/app/manifest/${digest}` })).statusCode).toBe(204);
    expect((await app.inject({ method: 'GET', url: `/v2/team/app/manifests/${digest}` })).statusCode).toBe(404);
    // A page of another origin may not make the browser delete anything.
    const forged = await app.inject({ method: 'DELETE', url: '/ui/api/repository/team/app/tag/v1', headers: { origin: 'https://evil.example' } });
    expect(forged.statusCode).toBe(403);
  });
});

describe('the UI API with users and access rules', () => {
  it('refuses the anonymous caller, without a challenge that would open the browser\'s dialog', async () => {
    const { app } = await withUsers();
    await pushImage(app, 'team/app', 'v1', basic('alice'));
    for (const url of ['/ui/api/repositories', '/ui/api/usage', '/ui/api/repository/team/app/tags']) {
      const res = await app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(401);
      expect(res.headers['www-authenticate'], url).toBeUndefined();
    }
    expect((await app.inject({ method: 'DELETE', url: '/ui/api/repository/team/app/tag/v1', headers: { 'x-ocireg-csrf': 'x' } })).statusCode).toBe(401);
    expect((await app.inject({ method: 'GET', url: '/ui/api/session' })).json()).toEqual({ auth: true, signIn: true, user: null, csrf: null, expiresAt: null });
  });

  it('signs in with a password into an HttpOnly SameSite=Strict cookie, and shows what the rules allow', async () => {
    const { app } = await withUsers();
    await pushImage(app, 'team/app', 'v1', basic('alice'));
    await pushImage(app, 'carol/private', 'v1', basic('carol'));
    expect((await signIn(app, 'alice', 'wrong')).res.statusCode).toBe(401);
    const { cookie, csrf, res } = await signIn(app, 'alice');
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ user: 'alice', csrf, expiresAt: expect.any(Number) });
    const setCookie = String(res.headers['set-cookie']);
    expect(setCookie).toMatch(/^ocireg_session=[\w.-]+; Path=\/; HttpOnly; SameSite=Strict; Max-Age=28800$/);
    expect(setCookie).not.toContain('alice-pw');
    const session = (await app.inject({ method: 'GET', url: '/ui/api/session', headers: { cookie } })).json();
    expect(session).toMatchObject({ user: 'alice', csrf });
    const repos = (await app.inject({ method: 'GET', url: '/ui/api/repositories', headers: { cookie } })).json() as { repositories: Array<{ name: string }> };
    expect(repos.repositories.map((r) => r.name)).toEqual(['team/app']);
    const usage = (await app.inject({ method: 'GET', url: '/ui/api/usage', headers: { cookie } })).json() as { repositories: Array<{ name: string }> };
    expect(usage.repositories.map((r) => r.name)).toEqual(['team/app']);
    expect((await app.inject({ method: 'GET', url: '/ui/api/repository/carol/private/tags', headers: { cookie } })).statusCode).toBe(403);
    // An altered cookie is no credential.
    const altered = cookie.slice(0, -2) + (cookie.endsWith('AA') ? 'BB' : 'AA');
    expect((await app.inject({ method: 'GET', url: '/ui/api/repositories', headers: { cookie: altered } })).statusCode).toBe(401);
  });

  it('deletes only with the session\'s CSRF value, from its own origin, and with the delete right', async () => {
    const { app } = await withUsers();
    await pushImage(app, 'team/app', 'v1', basic('alice'));
    await pushImage(app, 'team/app', 'v2', basic('alice'));
    const alice = await signIn(app, 'alice');
    const url = '/ui/api/repository/team/app/tag/v1';
    expect((await app.inject({ method: 'DELETE', url, headers: { cookie: alice.cookie } })).statusCode).toBe(403);
    expect((await app.inject({ method: 'DELETE', url, headers: { cookie: alice.cookie, 'x-ocireg-csrf': 'guessed' } })).statusCode).toBe(403);
    const crossSite = await app.inject({ method: 'DELETE', url, headers: { cookie: alice.cookie, 'x-ocireg-csrf': alice.csrf, origin: 'https://evil.example' } });
    expect(crossSite.statusCode).toBe(403);
    // bob may pull, not delete.
    const bob = await signIn(app, 'bob');
    expect((await app.inject({ method: 'GET', url: '/ui/api/repository/team/app/tags', headers: { cookie: bob.cookie } })).statusCode).toBe(200);
    expect((await app.inject({ method: 'DELETE', url, headers: { cookie: bob.cookie, 'x-ocireg-csrf': bob.csrf } })).statusCode).toBe(403);
    // bob's CSRF value is no good with alice's cookie.
    expect((await app.inject({ method: 'DELETE', url, headers: { cookie: alice.cookie, 'x-ocireg-csrf': bob.csrf } })).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: { authorization: basic('alice'), accept: OCI_MANIFEST } })).statusCode).toBe(200);
    const done = await app.inject({ method: 'DELETE', url, headers: { cookie: alice.cookie, 'x-ocireg-csrf': alice.csrf, origin: 'http://localhost:80' } });
    expect(done.statusCode).toBe(204);
    expect((await app.inject({ method: 'GET', url: '/v2/team/app/manifests/v1', headers: { authorization: basic('alice'), accept: OCI_MANIFEST } })).statusCode).toBe(404);
    // Signing out clears the cookie.
    const out = await app.inject({ method: 'POST', url: '/ui/api/logout', headers: { cookie: alice.cookie, 'x-ocireg-csrf': alice.csrf } });
    expect(out.statusCode).toBe(204);
    expect(String(out.headers['set-cookie'])).toMatch(/^ocireg_session=; .*Max-Age=0/);
  });

  it('throttles repeated failed sign-ins, and refuses malformed ones', async () => {
    const { app } = await withUsers();
    for (let i = 0; i < 5; i++) expect((await signIn(app, 'alice', `guess-${i}`)).res.statusCode).toBe(401);
    const locked = (await signIn(app, 'alice')).res;
    expect(locked.statusCode).toBe(429);
    expect(locked.headers['retry-after']).toBeDefined();
    const login = (payload: string, type = 'application/json') => app.inject({ method: 'POST', url: '/ui/api/login', headers: { 'content-type': type }, payload });
    expect((await login('{"username":"bob"}')).statusCode).toBe(400);
    expect((await login('not json')).statusCode).toBe(400);
    expect((await login('[]')).statusCode).toBe(400);
    expect((await login('username=bob&password=bob-pw', 'application/x-www-form-urlencoded')).statusCode).toBe(415);
    expect((await login(JSON.stringify({ username: 'bob', password: 'x'.repeat(20_000) }))).statusCode).toBe(413);
    expect((await signIn(app, 'bob')).res.statusCode).toBe(200);
  });

  it('accepts a session on every node that shares http.secret, and not after it expires or elsewhere', async () => {
    const now = Date.now();
    const a = new UiSessions('shared secret', 60_000, () => now);
    const b = new UiSessions('shared secret', 60_000, () => now);
    const other = new UiSessions('another secret', 60_000, () => now);
    const { token, session } = await a.issue('alice');
    expect(await b.verify(token)).toEqual(session);
    expect(await other.verify(token)).toBeUndefined();
    const later = new UiSessions('shared secret', 60_000, () => now + 61_000);
    expect(await later.verify(token)).toBeUndefined();
    expect(await a.verify(`${token}x`)).toBeUndefined();
    expect(await a.verify('')).toBeUndefined();
  });
});

describe('the UI files', () => {
  it('serves the app with a strict Content-Security-Policy, and nothing outside web/', async () => {
    reg = await startRegistry();
    const { app } = reg;
    const page = await app.inject({ method: 'GET', url: '/ui/' });
    expect(page.statusCode).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = String(page.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    // No inline script or style in the page: everything comes from files the CSP allows.
    expect(page.body).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    expect(page.body).not.toMatch(/\sstyle=|<style/);
    expect((await app.inject({ method: 'GET', url: '/ui/app.js' })).headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect((await app.inject({ method: 'GET', url: '/ui/style.css' })).headers['content-type']).toBe('text/css; charset=utf-8');
    expect((await app.inject({ method: 'GET', url: '/ui' })).statusCode).toBe(308);
    expect((await app.inject({ method: 'GET', url: '/ui/r/team/app' })).statusCode).toBe(200);
    for (const url of ['/ui/nothing.js', '/ui/../package.json', '/ui/%2e%2e/package.json', '/ui/api/nothing']) {
      expect((await app.inject({ method: 'GET', url })).statusCode, url).toBe(404);
    }
    // The app never writes to the page as HTML.
    const script = (await app.inject({ method: 'GET', url: '/ui/app.js' })).body;
    expect(script).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write/);
  });

  it('is not served with ui.enabled: false', async () => {
    reg = await startRegistry({ ui: { enabled: false } });
    expect((await reg.app.inject({ method: 'GET', url: '/ui/' })).statusCode).toBe(404);
    expect((await reg.app.inject({ method: 'GET', url: '/ui/api/session' })).statusCode).toBe(404);
  });
});

