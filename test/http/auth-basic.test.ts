import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { startRegistry, tempDir, type TestRegistry } from '../helpers.js';
import { PASSWORDS, basic, call, errorOf, parseChallenge, pushBlobAs, pushImageAs, writeHtpasswd } from './auth-support.js';
import { readFile, rm, writeFile } from 'node:fs/promises';

const ACCESS: ConfigFile['access'] = {
  groups: { devs: ['alice', 'bob'] },
  admins: ['root'],
  repositories: {
    'team-a/**': { users: { alice: ['pull', 'push', 'delete'] }, groups: { devs: ['pull', 'push'] }, authenticated: ['pull'] },
    'public/**': { anonymous: ['pull'], users: { alice: ['pull', 'push'] } },
    'secret/**': { users: { alice: ['pull', 'push'] } },
    'carol/**': { users: { carol: ['pull', 'push'] } },
    '**': { authenticated: ['pull'] },
  },
};

describe('Basic authentication with htpasswd and access rules', () => {
  let dir: string;
  let reg: TestRegistry;

  beforeAll(async () => {
    dir = await tempDir('ocireg-auth-');
    const path = await writeHtpasswd(dir);
    reg = await startRegistry({ auth: { htpasswd: { realm: 'test-realm', path } }, access: ACCESS });
    // Content to read: alice pushes into team-a, public and secret.
    for (const repo of ['team-a/app', 'public/base', 'secret/vault']) {
      const { res } = await pushImageAs(reg.app, basic('alice'), repo);
      expect(res.statusCode, `${repo}: ${res.body}`).toBe(201);
    }
  });
  afterAll(async () => {
    await reg?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers 401 with the Basic challenge and the spec envelope to a caller without credentials', async () => {
    const res = await call(reg.app, undefined, { method: 'GET', url: '/v2/' });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Basic realm="test-realm"');
    expect(errorOf(res)).toBe('UNAUTHORIZED');
    const push = await call(reg.app, undefined, { method: 'POST', url: '/v2/team-a/app/blobs/uploads/' });
    expect(push.statusCode).toBe(401);
    expect(push.headers['www-authenticate']).toBe('Basic realm="test-realm"');
  });

  it('lets in the right password and refuses a wrong one, an unknown user and malformed headers', async () => {
    expect((await call(reg.app, basic('alice'), { method: 'GET', url: '/v2/' })).statusCode).toBe(200);
    for (const authorization of [basic('alice', 'wrong'), basic('mallory', 'x'), 'Basic !!!', 'Basic ' + Buffer.from('nocolon').toString('base64'), 'Digest x']) {
      const res = await call(reg.app, authorization, { method: 'GET', url: '/v2/', remoteAddress: '10.9.9.9' });
      expect(res.statusCode, authorization).toBe(401);
      expect(errorOf(res)).toBe('UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toBe('Basic realm="test-realm"');
    }
  });

  it('gives each user what the most specific rule says', async () => {
    // bob (devs) may push to team-a but not delete; carol (authenticated) may only pull there.
    expect((await pushImageAs(reg.app, basic('bob'), 'team-a/bob', 'v1')).res.statusCode).toBe(201);
    const carolPush = await pushBlobAs(reg.app, basic('carol'), 'team-a/app', 'carol');
    expect(carolPush.res.statusCode).toBe(403);
    expect(errorOf(carolPush.res)).toBe('DENIED');
    expect((await call(reg.app, basic('carol'), { method: 'GET', url: '/v2/team-a/app/manifests/v1' })).statusCode).toBe(200);
    const bobDelete = await call(reg.app, basic('bob'), { method: 'DELETE', url: '/v2/team-a/app/manifests/v1' });
    expect(bobDelete.statusCode).toBe(403);
    // secret/**: only alice; the catch-all "**" does not apply because a more specific pattern matches.
    const carolSecret = await call(reg.app, basic('carol'), { method: 'GET', url: '/v2/secret/vault/manifests/v1' });
    expect(carolSecret.statusCode).toBe(403);
    expect(errorOf(carolSecret)).toBe('DENIED');
    // carol's own namespace
    expect((await pushImageAs(reg.app, basic('carol'), 'carol/app')).res.statusCode).toBe(201);
    // The catch-all: any signed-in user may pull elsewhere, nobody may push.
    expect((await pushBlobAs(reg.app, basic('alice'), 'elsewhere/x', 'x')).res.statusCode).toBe(403);
  });

  it('lets anonymous callers pull public/** and nothing else, and asks them to sign in for the rest', async () => {
    expect((await call(reg.app, undefined, { method: 'GET', url: '/v2/public/base/manifests/v1' })).statusCode).toBe(200);
    expect((await call(reg.app, undefined, { method: 'HEAD', url: '/v2/public/base/manifests/v1' })).statusCode).toBe(200);
    // skopeo and podman answer a Basic challenge without credentials with an empty user and password.
    expect((await call(reg.app, basic('', ''), { method: 'GET', url: '/v2/public/base/manifests/v1' })).statusCode).toBe(200);
    expect((await call(reg.app, basic('', ''), { method: 'GET', url: '/v2/team-a/app/manifests/v1' })).statusCode).toBe(401);
    const push = await pushBlobAs(reg.app, undefined, 'public/base', 'anon');
    expect(push.res.statusCode).toBe(401);
    expect(errorOf(push.res)).toBe('UNAUTHORIZED');
    expect((await call(reg.app, undefined, { method: 'GET', url: '/v2/team-a/app/manifests/v1' })).statusCode).toBe(401);
    expect((await call(reg.app, undefined, { method: 'GET', url: '/v2/team-a/app/tags/list' })).statusCode).toBe(401);
  });

  it('refuses every endpoint of the route table to the anonymous and to a caller without the right', async () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    const session = await call(reg.app, basic('alice'), { method: 'POST', url: '/v2/secret/vault/blobs/uploads/' });
    expect(session.statusCode).toBe(202);
    const upload = session.headers.location as string;
    const cases: Array<[string, string]> = [
      ['GET', '/v2/secret/vault/manifests/v1'],
      ['HEAD', '/v2/secret/vault/manifests/v1'],
      ['PUT', '/v2/secret/vault/manifests/v2'],
      ['DELETE', `/v2/secret/vault/manifests/${digest}`],
      ['GET', `/v2/secret/vault/blobs/${digest}`],
      ['HEAD', `/v2/secret/vault/blobs/${digest}`],
      ['DELETE', `/v2/secret/vault/blobs/${digest}`],
      ['POST', '/v2/secret/vault/blobs/uploads/'],
      ['GET', upload],
      ['PATCH', upload],
      ['PUT', `${upload}?digest=${digest}`],
      ['DELETE', upload],
      ['GET', '/v2/secret/vault/tags/list'],
      ['GET', `/v2/secret/vault/referrers/${digest}`],
    ];
    for (const [method, url] of cases) {
      const anonymous = await call(reg.app, undefined, { method, url });
      expect(anonymous.statusCode, `anonymous ${method} ${url}`).toBe(401);
      expect(anonymous.headers['www-authenticate']).toBe('Basic realm="test-realm"');
      const carol = await call(reg.app, basic('carol'), { method, url }); // no right on secret/**
      expect(carol.statusCode, `carol ${method} ${url}`).toBe(403);
      if (method !== 'HEAD') expect(errorOf(carol)).toBe('DENIED');
    }
    // alice's session is intact after all that.
    expect((await call(reg.app, basic('alice'), { method: 'GET', url: upload })).statusCode).toBe(204);
  });

  it('refuses a delete to those without the delete right, and lets alice and the admin delete', async () => {
    const { res, manifest } = await pushImageAs(reg.app, basic('alice'), 'team-a/doomed', 'v1');
    expect(res.statusCode).toBe(201);
    expect((await call(reg.app, basic('carol'), { method: 'DELETE', url: `/v2/team-a/doomed/manifests/${manifest!.digest}` })).statusCode).toBe(403);
    expect((await call(reg.app, undefined, { method: 'DELETE', url: `/v2/team-a/doomed/manifests/${manifest!.digest}` })).statusCode).toBe(401);
    expect((await call(reg.app, basic('alice'), { method: 'DELETE', url: `/v2/team-a/doomed/manifests/${manifest!.digest}` })).statusCode).toBe(202);
    const again = await pushImageAs(reg.app, basic('alice'), 'carol/doomed', 'v1');
    expect(again.res.statusCode).toBe(403); // alice has nothing under carol/**
    expect((await pushImageAs(reg.app, basic('root'), 'carol/doomed', 'v1')).res.statusCode).toBe(201);
    expect((await call(reg.app, basic('root'), { method: 'DELETE', url: '/v2/carol/doomed/manifests/v1' })).statusCode).toBe(202);
  });

  it('lists in _catalog only what the caller may pull, and pages over those alone', async () => {
    const list = async (authorization: string | undefined, query = '') => {
      const res = await call(reg.app, authorization, { method: 'GET', url: `/v2/_catalog${query}` });
      expect(res.statusCode, res.body).toBe(200);
      return { repositories: (res.json() as { repositories: string[] }).repositories, link: res.headers.link as string | undefined };
    };
    const all = (await list(basic('root'))).repositories;
    expect(all).toEqual(expect.arrayContaining(['team-a/app', 'public/base', 'secret/vault', 'carol/app']));
    expect((await list(basic('carol'))).repositories).not.toContain('secret/vault');
    expect((await list(basic('carol'))).repositories).toContain('carol/app');
    expect((await list(basic('alice'))).repositories).toContain('secret/vault');
    expect((await list(undefined)).repositories).toEqual(['public/base']);
    // Paging counts the visible repositories only: carol walks her list one by one.
    const visible = (await list(basic('carol'))).repositories;
    const seen: string[] = [];
    let query = '?n=1';
    for (let i = 0; i < 20 && query; i++) {
      const page = await list(basic('carol'), query);
      expect(page.repositories).toHaveLength(1);
      seen.push(...page.repositories);
      query = page.link ? `?${/\?([^>]+)>/.exec(page.link)![1]}` : '';
    }
    expect(seen).toEqual(visible);
  });

  it('mounts only from repositories the caller may pull; otherwise it is an ordinary upload', async () => {
    const secret = await pushBlobAs(reg.app, basic('alice'), 'secret/vault', 'the secret layer');
    expect(secret.res.statusCode).toBe(201);
    const explicit = await call(reg.app, basic('carol'), {
      method: 'POST',
      url: `/v2/carol/app/blobs/uploads/?mount=${secret.digest}&from=secret/vault`,
    });
    expect(explicit.statusCode).toBe(202);
    const automatic = await call(reg.app, basic('carol'), { method: 'POST', url: `/v2/carol/app/blobs/uploads/?mount=${secret.digest}` });
    expect(automatic.statusCode).toBe(202);
    expect((await call(reg.app, basic('carol'), { method: 'HEAD', url: `/v2/carol/app/blobs/${secret.digest}` })).statusCode).toBe(404);
    // alice may pull secret/vault, and push to public/**: her mount goes through.
    const allowed = await call(reg.app, basic('alice'), {
      method: 'POST',
      url: `/v2/public/base/blobs/uploads/?mount=${secret.digest}&from=secret/vault`,
    });
    expect(allowed.statusCode).toBe(201);
    expect(allowed.headers['docker-content-digest']).toBe(secret.digest);
  });

  it('locks out one (address, user) pair after 5 failures in a minute, and no other pair', async () => {
    const attempt = (password: string, remoteAddress: string, user = 'bob') =>
      call(reg.app, basic(user, password), { method: 'GET', url: '/v2/', remoteAddress });
    for (let i = 0; i < 5; i++) expect((await attempt('wrong', '10.0.0.1')).statusCode).toBe(401);
    const locked = await attempt(PASSWORDS.bob!, '10.0.0.1');
    expect(locked.statusCode).toBe(429);
    expect(errorOf(locked)).toBe('TOOMANYREQUESTS');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    expect((await attempt(PASSWORDS.bob!, '10.0.0.2')).statusCode).toBe(200);
    expect((await attempt(PASSWORDS.alice!, '10.0.0.1', 'alice')).statusCode).toBe(200);
  });

  it('counts guesses sent in parallel before their results are known', async () => {
    const guesses = await Promise.all(
      Array.from({ length: 20 }, (_, i) => call(reg.app, basic('carol', `guess-${i}`), { method: 'GET', url: '/v2/', remoteAddress: '10.0.1.1' })),
    );
    const statuses = guesses.map((r) => r.statusCode);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(5);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(15);
    expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
    expect((await call(reg.app, basic('carol'), { method: 'GET', url: '/v2/', remoteAddress: '10.0.1.1' })).statusCode).toBe(429);
  });

  it('lets the same right password through many times at once (a client pushing layers in parallel)', async () => {
    const all = await Promise.all(
      Array.from({ length: 12 }, () => call(reg.app, basic('bob'), { method: 'GET', url: '/v2/', remoteAddress: '10.0.2.1' })),
    );
    expect(all.map((r) => r.statusCode)).toEqual(Array(12).fill(200));
  });

  it('bounds the password checks one address may have running, across user names', async () => {
    const names = Array.from({ length: 30 }, (_, i) => `nobody-${i}`);
    const all = await Promise.all(names.map((u) => call(reg.app, basic(u, 'x'), { method: 'GET', url: '/v2/', remoteAddress: '10.0.3.1' })));
    const statuses = all.map((r) => r.statusCode);
    expect(statuses.filter((s) => s === 401).length).toBeLessThanOrEqual(8);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
    // Another address is not held up.
    expect((await call(reg.app, basic('alice'), { method: 'GET', url: '/v2/', remoteAddress: '10.0.3.2' })).statusCode).toBe(200);
  });

  it('stops bcrypt for an address that fails across many user names, while credentials verified a moment ago still pass', async () => {
    const address = '10.0.5.1';
    expect((await call(reg.app, basic('alice'), { method: 'GET', url: '/v2/', remoteAddress: address })).statusCode).toBe(200);
    const statuses: number[] = [];
    for (let i = 0; i < 32; i++) {
      statuses.push((await call(reg.app, basic(`rotating-${i}`, 'x'), { method: 'GET', url: '/v2/', remoteAddress: address })).statusCode);
    }
    expect(statuses.slice(0, 30)).toEqual(Array(30).fill(401));
    expect(statuses.slice(30)).toEqual([429, 429]);
    // alice verified within the minute: no bcrypt needed, not held up. ci would need bcrypt: waits.
    expect((await call(reg.app, basic('alice'), { method: 'GET', url: '/v2/', remoteAddress: address })).statusCode).toBe(200);
    expect((await call(reg.app, basic('ci'), { method: 'GET', url: '/v2/', remoteAddress: address })).statusCode).toBe(429);
    expect((await call(reg.app, basic('ci'), { method: 'GET', url: '/v2/', remoteAddress: '10.0.5.2' })).statusCode).toBe(200);
  });

  it('refuses an over-long user name without remembering it', async () => {
    const res = await call(reg.app, basic('u'.repeat(300), 'x'), { method: 'GET', url: '/v2/', remoteAddress: '10.0.4.1' });
    expect(res.statusCode).toBe(401);
  });
});

describe('behind a reverse proxy (http.trustproxy)', () => {
  it('takes the client address and scheme from X-Forwarded-* of a trusted proxy only', async () => {
    const dir = await tempDir('ocireg-auth-');
    const reg = await startRegistry({
      http: { trustproxy: ['127.0.0.1'] },
      auth: { htpasswd: { path: await writeHtpasswd(dir) }, tokenserver: { enabled: true } },
    });
    try {
      const challenge = await call(reg.app, undefined, {
        method: 'GET',
        url: '/v2/',
        headers: { 'x-forwarded-proto': 'https', host: 'registry.example' },
      });
      expect(parseChallenge(challenge.headers['www-authenticate'] as string).params.realm).toBe('https://registry.example/auth/token');
      const untrusted = await call(reg.app, undefined, {
        method: 'GET',
        url: '/v2/',
        remoteAddress: '192.0.2.9',
        headers: { 'x-forwarded-proto': 'https', host: 'registry.example' },
      });
      expect(parseChallenge(untrusted.headers['www-authenticate'] as string).params.realm).toBe('http://registry.example/auth/token');
      // Five failures from one forwarded client lock that client, not the proxy's other clients.
      const from = (client: string, password: string) =>
        call(reg.app, basic('alice', password), { method: 'GET', url: '/v2/', headers: { 'x-forwarded-for': client } });
      for (let i = 0; i < 5; i++) expect((await from('198.51.100.1', `wrong-${i}`)).statusCode).toBe(401);
      expect((await from('198.51.100.1', PASSWORDS.alice!)).statusCode).toBe(429);
      expect((await from('198.51.100.2', PASSWORDS.alice!)).statusCode).toBe(200);
    } finally {
      await reg.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('a registry that cannot start its auth', () => {
  it('refuses to start on a refused htpasswd line or bad access rules, naming them, and leaves the folder usable', async () => {
    const dir = await tempDir('ocireg-auth-');
    try {
      const path = await writeHtpasswd(dir);
      await writeFile(path, `${await readFile(path, 'utf8')}mallory:$apr1$abc$def\n`);
      await expect(startRegistry({ auth: { htpasswd: { path } } }, dir)).rejects.toThrow(/line 6: user "mallory": MD5/);
      await expect(
        startRegistry({ auth: { htpasswd: { path: await writeHtpasswd(dir) } }, access: { repositories: { 'a/**': { groups: { qa: ['pull'] } } } } }, dir),
      ).rejects.toThrow(/unknown group "qa"/);
      // Nothing was left open: the same folder serves once the configuration is right.
      const reg = await startRegistry({ auth: { htpasswd: { path: await writeHtpasswd(dir) } } }, dir);
      expect((await call(reg.app, basic('alice'), { method: 'GET', url: '/v2/' })).statusCode).toBe(200);
      await reg.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('auth without an access section', () => {
  it('lets every signed-in user do everything and anonymous callers nothing', async () => {
    const dir = await tempDir('ocireg-auth-');
    const reg = await startRegistry({ auth: { htpasswd: { path: await writeHtpasswd(dir) } } });
    try {
      expect((await pushImageAs(reg.app, basic('carol'), 'any/where')).res.statusCode).toBe(201);
      expect((await call(reg.app, basic('bob'), { method: 'DELETE', url: '/v2/any/where/manifests/v1' })).statusCode).toBe(202);
      const anon = await call(reg.app, undefined, { method: 'GET', url: '/v2/any/where/tags/list' });
      expect(anon.statusCode).toBe(401);
      expect(anon.headers['www-authenticate']).toBe('Basic realm="ocireg"');
      expect((await call(reg.app, undefined, { method: 'GET', url: '/v2/_catalog' })).statusCode).toBe(401);
      expect((await call(reg.app, undefined, { method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    } finally {
      await reg.destroy();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('what reaches the log', () => {
  it('names the user in the access log and never writes a password, an Authorization header or a token', async () => {
    const dir = await tempDir('ocireg-auth-');
    const lines: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const config = loadConfig({
      env: {},
      overrides: { storage: { filesystem: { rootdirectory: dir } }, auth: { htpasswd: { path: await writeHtpasswd(dir) } } },
    });
    const app = await buildApp(config, { logger: { level: 'debug', stream } });
    try {
      await app.ready();
      await call(app, basic('alice'), { method: 'GET', url: '/v2/' });
      await call(app, basic('alice', 'hunter2-wrong'), { method: 'GET', url: '/v2/' });
      await call(app, 'Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.', { method: 'GET', url: '/v2/' });
      const log = lines.join('');
      const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(entries.some((e) => e.msg === 'request completed' && e.user === 'alice')).toBe(true);
      for (const secret of [PASSWORDS.alice!, 'hunter2-wrong', basic('alice').slice(6), 'eyJhbGciOiJub25lIn0', '"authorization"']) {
        expect(log.toLowerCase()).not.toContain(secret.toLowerCase());
      }
    } finally {
      await app.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
