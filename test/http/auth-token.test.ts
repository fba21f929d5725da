import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT, decodeJwt, decodeProtectedHeader, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessKeys } from '../../src/auth/access-keys.js';
import { parseGrant } from '../../src/auth/scope.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { startRegistry, tempDir, type TestRegistry } from '../helpers.js';
import { PASSWORDS, basic, bearer, call, errorOf, parseChallenge, pushBlobAs, pushImageAs, writeHtpasswd } from './auth-support.js';

const ACCESS: ConfigFile['access'] = {
  groups: { devs: ['alice', 'bob'] },
  repositories: {
    'team-a/**': { users: { alice: ['pull', 'push', 'delete'] }, authenticated: ['pull'] },
    'public/**': { anonymous: ['pull'], users: { alice: ['pull', 'push'] } },
    'app/**': { users: { ci: ['pull', 'push'] } },
    'other/**': { users: { ci: ['pull', 'push'] } },
  },
};

interface TokenAnswer {
  token?: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
  scope?: string;
}

describe('the built-in token server', () => {
  let dir: string;
  let reg: TestRegistry;

  const getToken = async (authorization: string | undefined, scopes: string[], extra = '') => {
    const query = [`service=test-service`, ...scopes.map((s) => `scope=${encodeURIComponent(s)}`)].join('&');
    return call(reg.app, authorization, { method: 'GET', url: `/auth/token?${query}${extra}` });
  };
  const tokenFor = async (authorization: string | undefined, ...scopes: string[]) => {
    const res = await getToken(authorization, scopes);
    expect(res.statusCode, res.body).toBe(200);
    return (res.json() as TokenAnswer).access_token;
  };
  const postForm = (form: Record<string, string>) =>
    call(reg.app, undefined, {
      method: 'POST',
      url: '/auth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams(form).toString(),
    });

  beforeAll(async () => {
    dir = await tempDir('ocireg-token-');
    reg = await startRegistry({
      auth: {
        htpasswd: { path: await writeHtpasswd(dir) },
        tokenserver: { enabled: true, issuer: 'test-issuer', service: 'test-service', key: join(dir, 'key.pem'), expiration: '5m' },
      },
      access: ACCESS,
    });
    expect((await pushImageAs(reg.app, basic('alice'), 'public/base')).res.statusCode).toBe(201);
    expect((await pushImageAs(reg.app, basic('alice'), 'team-a/app')).res.statusCode).toBe(201);
  });
  afterAll(async () => {
    await reg?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('challenges with the realm, the service and exactly the scope the request needs', async () => {
    const cases: Array<[string, string, string | undefined]> = [
      ['GET', '/v2/', undefined],
      ['GET', '/v2/team-a/app/manifests/v1', 'repository:team-a/app:pull'],
      ['HEAD', '/v2/team-a/app/blobs/sha256:' + 'a'.repeat(64), 'repository:team-a/app:pull'],
      ['POST', '/v2/team-a/app/blobs/uploads/', 'repository:team-a/app:pull,push'],
      ['PUT', '/v2/team-a/app/manifests/v2', 'repository:team-a/app:pull,push'],
      ['DELETE', '/v2/team-a/app/manifests/v1', 'repository:team-a/app:delete'],
    ];
    for (const [method, url, scope] of cases) {
      const res = await call(reg.app, undefined, { method, url, headers: { host: 'registry.test:5000' } });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
      const challenge = parseChallenge(res.headers['www-authenticate'] as string);
      expect(challenge.scheme).toBe('Bearer');
      expect(challenge.params.realm).toBe('http://registry.test:5000/auth/token');
      expect(challenge.params.service).toBe('test-service');
      expect(challenge.params.scope).toBe(scope);
      expect(challenge.params.error).toBeUndefined();
    }
  });

  it('asks for registry:catalog:* when a token lacks it; anonymous callers list what anonymous users may pull', async () => {
    const repoOnly = await tokenFor(basic('alice'), 'repository:team-a/app:pull');
    const res = await call(reg.app, bearer(repoOnly), { method: 'GET', url: '/v2/_catalog' });
    expect(res.statusCode).toBe(401);
    expect(parseChallenge(res.headers['www-authenticate'] as string).params).toMatchObject({ scope: 'registry:catalog:*', error: 'insufficient_scope' });
    const catalogToken = await tokenFor(basic('alice'), 'registry:catalog:*');
    expect(decodeJwt(catalogToken).access).toEqual([{ type: 'registry', name: 'catalog', actions: ['*'] }]);
    const listed = await call(reg.app, bearer(catalogToken), { method: 'GET', url: '/v2/_catalog' });
    expect(listed.json()).toEqual({ repositories: ['public/base', 'team-a/app'] });
    const anonymous = await call(reg.app, undefined, { method: 'GET', url: '/v2/_catalog' });
    expect(anonymous.json()).toEqual({ repositories: ['public/base'] });
  });

  it('issues a token with the claims, header and lifetime of the spec, granting what was asked and allowed', async () => {
    const before = Math.floor(Date.now() / 1000);
    const res = await getToken(basic('alice'), ['repository:team-a/app:pull,push,delete', 'repository:secret/x:pull'], '&account=alice&client_id=tests');
    expect(res.statusCode).toBe(200);
    const answer = res.json() as TokenAnswer;
    expect(answer.token).toBe(answer.access_token);
    expect(answer.expires_in).toBe(300);
    expect(Date.parse(answer.issued_at)).toBeGreaterThan(0);
    expect(answer.refresh_token).toBeUndefined();
    const header = decodeProtectedHeader(answer.access_token);
    expect(header.alg).toBe('ES256');
    const jwks = (await call(reg.app, undefined, { method: 'GET', url: '/auth/jwks.json' })).json() as { keys: Array<{ kid: string }> };
    expect(jwks.keys).toHaveLength(1);
    expect(header.kid).toBe(jwks.keys[0]!.kid);
    const claims = decodeJwt(answer.access_token);
    expect(claims).toMatchObject({ iss: 'test-issuer', sub: 'alice', aud: 'test-service' });
    expect(claims.exp! - claims.iat!).toBe(300);
    expect(claims.iat!).toBeGreaterThanOrEqual(before - 1);
    expect(claims.nbf).toBeDefined();
    expect(typeof claims.jti).toBe('string');
    // secret/x: alice has nothing there, so it is left out (less than asked is not an error).
    expect(claims.access).toEqual([{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] }]);
  });

  it('lets a token do what it carries, asks for a new token when it lacks a right its user has, and denies what the user lacks', async () => {
    const pullOnly = await tokenFor(basic('alice'), 'repository:team-a/app:pull');
    expect((await call(reg.app, bearer(pullOnly), { method: 'GET', url: '/v2/team-a/app/manifests/v1' })).statusCode).toBe(200);
    expect((await call(reg.app, bearer(pullOnly), { method: 'GET', url: '/v2/' })).statusCode).toBe(200);
    const push = await pushBlobAs(reg.app, bearer(pullOnly), 'team-a/app', 'more');
    expect(push.res.statusCode).toBe(401);
    const challenge = parseChallenge(push.res.headers['www-authenticate'] as string);
    expect(challenge.params).toMatchObject({ scope: 'repository:team-a/app:pull,push', error: 'insufficient_scope' });
    // Another repository than the token names
    expect((await call(reg.app, bearer(pullOnly), { method: 'GET', url: '/v2/public/base/manifests/v1' })).statusCode).toBe(401);

    // carol asks for push on team-a: she gets pull only, and her push is denied (403: a new token would not help).
    const carol = await tokenFor(basic('carol'), 'repository:team-a/app:pull,push');
    expect(decodeJwt(carol).access).toEqual([{ type: 'repository', name: 'team-a/app', actions: ['pull'] }]);
    const denied = await pushBlobAs(reg.app, bearer(carol), 'team-a/app', 'carol');
    expect(denied.res.statusCode).toBe(403);
    expect(errorOf(denied.res)).toBe('DENIED');

    const full = await tokenFor(basic('alice'), 'repository:team-a/app:pull,push');
    expect((await pushImageAs(reg.app, bearer(full), 'team-a/app', 'v2', 'by-token')).res.statusCode).toBe(201);
  });

  it('gives anonymous callers tokens for what anonymous users may do', async () => {
    const token = await tokenFor(undefined, 'repository:public/base:pull,push', 'repository:team-a/app:pull');
    const claims = decodeJwt(token);
    expect(claims.sub).toBe('');
    expect(claims.access).toEqual([{ type: 'repository', name: 'public/base', actions: ['pull'] }]);
    expect((await call(reg.app, bearer(token), { method: 'GET', url: '/v2/public/base/manifests/v1' })).statusCode).toBe(200);
    expect((await pushBlobAs(reg.app, bearer(token), 'public/base', 'anon')).res.statusCode).toBe(401);
    expect((await call(reg.app, bearer(token), { method: 'GET', url: '/v2/team-a/app/manifests/v1' })).statusCode).toBe(401);
  });

  it('refuses wrong credentials at the token endpoint, and bad requests with 400', async () => {
    const wrong = await getToken(basic('alice', 'nope'), ['repository:team-a/app:pull']);
    expect(wrong.statusCode).toBe(401);
    expect(errorOf(wrong)).toBe('UNAUTHORIZED');
    expect((await call(reg.app, undefined, { method: 'GET', url: '/auth/token?service=another' })).statusCode).toBe(400);
    expect((await getToken(undefined, ['nonsense'])).statusCode).toBe(400);
    expect((await getToken(basic('alice'), [], '&account=bob')).statusCode).toBe(400);
    expect((await postForm({ grant_type: 'client_credentials' })).statusCode).toBe(400);
    const huge = await call(reg.app, undefined, {
      method: 'POST',
      url: '/auth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `grant_type=password&username=alice&password=${'x'.repeat(70_000)}`,
    });
    expect(huge.statusCode).toBe(413);
    expect(errorOf(huge)).toBe('SIZE_INVALID');
    const notForm = await call(reg.app, undefined, { method: 'POST', url: '/auth/token', headers: { 'content-type': 'application/json' }, payload: '{}' });
    expect(notForm.statusCode).toBe(400);
  });

  it('returns a refresh token with offline_token=true, and the OAuth2 POST flow takes it (and the password grant)', async () => {
    const res = await getToken(basic('alice'), ['repository:team-a/app:pull'], '&offline_token=true&client_id=docker');
    const refresh = (res.json() as TokenAnswer).refresh_token!;
    expect(typeof refresh).toBe('string');
    // A refresh token is no access token.
    expect((await call(reg.app, bearer(refresh), { method: 'GET', url: '/v2/team-a/app/manifests/v1' })).statusCode).toBe(401);

    const refreshed = await postForm({ grant_type: 'refresh_token', refresh_token: refresh, service: 'test-service', client_id: 'docker', scope: 'repository:team-a/app:pull,push' });
    expect(refreshed.statusCode, refreshed.body).toBe(200);
    const access = (refreshed.json() as TokenAnswer).access_token;
    expect(decodeJwt(access)).toMatchObject({ sub: 'alice', access: [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push'] }] });
    expect((await postForm({ grant_type: 'refresh_token', refresh_token: refresh.slice(0, -3) + 'AAA' })).statusCode).toBe(401);
    expect((await postForm({ grant_type: 'refresh_token', refresh_token: access })).statusCode).toBe(401);

    const password = await postForm({ grant_type: 'password', username: 'alice', password: 'alice-pw', service: 'test-service', client_id: 'docker', access_type: 'offline', scope: 'repository:public/base:pull' });
    expect(password.statusCode).toBe(200);
    expect((password.json() as TokenAnswer).refresh_token).toEqual(expect.any(String));
    expect((await postForm({ grant_type: 'password', username: 'alice', password: 'bad' })).statusCode).toBe(401);
  });

  it('stops honouring a token (even one checked before) once its user leaves the htpasswd file', async () => {
    const token = await tokenFor(basic('bob'), 'repository:team-a/app:pull');
    expect((await call(reg.app, bearer(token), { method: 'GET', url: '/v2/team-a/app/manifests/v1' })).statusCode).toBe(200);
    const { bob: _gone, ...rest } = PASSWORDS;
    await writeHtpasswd(dir, rest);
    // The registry notices the new file by itself (it polls about once a second).
    let status = 200;
    for (let i = 0; i < 50 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await call(reg.app, bearer(token), { method: 'GET', url: '/v2/team-a/app/manifests/v1' })).statusCode;
    }
    expect(status).toBe(401);
    await writeHtpasswd(dir);
  });

  it('ends a refresh token once its user\'s password changes in the htpasswd file', async () => {
    const res = await getToken(basic('carol'), [], '&offline_token=true');
    const refresh = (res.json() as TokenAnswer).refresh_token!;
    const refreshWith = () => postForm({ grant_type: 'refresh_token', refresh_token: refresh, service: 'test-service' });
    expect((await refreshWith()).statusCode).toBe(200);
    await writeHtpasswd(dir, { ...PASSWORDS, carol: 'a-new-password' });
    let status = 200;
    for (let i = 0; i < 50 && status === 200; i++) {
      await new Promise((r) => setTimeout(r, 200));
      status = (await refreshWith()).statusCode;
    }
    expect(status).toBe(401);
    await writeHtpasswd(dir);
  });

  it('treats empty Basic credentials at the token endpoint as anonymous', async () => {
    const res = await getToken(basic('', ''), ['repository:public/base:pull']);
    expect(res.statusCode).toBe(200);
    expect(decodeJwt((res.json() as TokenAnswer).access_token)).toMatchObject({ sub: '', access: [{ type: 'repository', name: 'public/base', actions: ['pull'] }] });
  });

  it('still accepts Basic credentials on /v2/', async () => {
    expect((await call(reg.app, basic('alice'), { method: 'GET', url: '/v2/team-a/app/manifests/v1' })).statusCode).toBe(200);
  });

  it('refuses forged and foreign tokens with 401 invalid_token', async () => {
    const good = await tokenFor(basic('alice'), 'repository:team-a/app:pull');
    const [h, p, s] = good.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
    const edited = Buffer.from(JSON.stringify({ ...payload, access: [{ type: 'repository', name: 'team-a/app', actions: ['pull', 'push', 'delete'] }] })).toString('base64url');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${p}.`;
    const other = await generateKeyPair('ES256');
    const foreign = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256', kid: decodeProtectedHeader(good).kid! }).sign(other.privateKey);
    for (const token of [`${h}.${edited}.${s}`, none, foreign, 'not-a-jwt', `${h}.${p}`]) {
      const res = await call(reg.app, bearer(token), { method: 'GET', url: '/v2/team-a/app/manifests/v1' });
      expect(res.statusCode, token.slice(0, 30)).toBe(401);
      expect(parseChallenge(res.headers['www-authenticate'] as string).params.error).toBe('invalid_token');
    }
  });

  it('limits tokens got with an access key to its scopes, and stops them once the key is revoked', async () => {
    const keys = new AccessKeys(reg.app.registry.database.accessKeys);
    const { id, secret } = await keys.create({ user: 'ci', scopes: [parseGrant('repository:app/*:pull,push')] });
    const res = await getToken(basic('ci', secret), ['repository:app/web:pull,push', 'repository:other/web:pull,push'], '&offline_token=true');
    expect(res.statusCode).toBe(200);
    const answer = res.json() as TokenAnswer;
    expect(decodeJwt(answer.access_token).access).toEqual([{ type: 'repository', name: 'app/web', actions: ['pull', 'push'] }]);
    expect((await pushImageAs(reg.app, bearer(answer.access_token), 'app/web')).res.statusCode).toBe(201);
    // With Basic, the key is limited the same way.
    expect((await pushBlobAs(reg.app, basic('ci', secret), 'other/web', 'x')).res.statusCode).toBe(403);
    expect((await pushBlobAs(reg.app, basic('ci', secret), 'app/web', 'x')).res.statusCode).toBe(201);

    expect(await keys.revoke(id)).toBe(true);
    expect((await call(reg.app, bearer(answer.access_token), { method: 'GET', url: '/v2/app/web/manifests/v1' })).statusCode).toBe(401);
    expect((await postForm({ grant_type: 'refresh_token', refresh_token: answer.refresh_token! })).statusCode).toBe(401);
    expect((await call(reg.app, basic('ci', secret), { method: 'GET', url: '/v2/app/web/manifests/v1' })).statusCode).toBe(401);
  });
});
