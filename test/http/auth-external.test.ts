import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Fastify from 'fastify';
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerGuard } from '../../src/http/auth/guard.js';
import { registerErrorHandling } from '../../src/http/errors.js';
import { startRegistry, tempDir, type TestRegistry } from '../helpers.js';
import { bearer, call, errorOf, parseChallenge, pushImageAs } from './auth-support.js';

describe('trusting an external token issuer (auth.token)', () => {
  let dir: string;
  let reg: TestRegistry;
  let key: CryptoKey;

  const sign = (claims: Record<string, unknown>, options: { kid?: string; aud?: string | string[]; exp?: number } = {}) =>
    new SignJWT({ access: [], ...claims })
      .setProtectedHeader({ alg: 'ES256', kid: options.kid ?? 'issuer-key-1' })
      .setIssuer('auth.example')
      .setAudience(options.aud ?? 'registry.example')
      .setSubject(String(claims.sub ?? 'dana'))
      .setIssuedAt()
      .setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 300)
      .sign(key);

  beforeAll(async () => {
    dir = await tempDir('ocireg-external-');
    const pair = await generateKeyPair('ES256');
    key = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'issuer-key-1', alg: 'ES256', use: 'sig' };
    const jwks = join(dir, 'jwks.json');
    await writeFile(jwks, JSON.stringify({ keys: [jwk] }));
    reg = await startRegistry({
      auth: { token: { realm: 'https://auth.example/token', service: 'registry.example', issuer: 'auth.example', jwks } },
      access: { repositories: { 'shared/**': { authenticated: ['pull'] }, 'dana/**': { users: { dana: ['pull', 'push'] } } } },
    });
  });
  afterAll(async () => {
    await reg?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('challenges with the configured realm and service', async () => {
    const res = await call(reg.app, undefined, { method: 'GET', url: '/v2/dana/app/manifests/v1' });
    expect(res.statusCode).toBe(401);
    expect(parseChallenge(res.headers['www-authenticate'] as string)).toEqual({
      scheme: 'Bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:dana/app:pull' },
    });
  });

  it('accepts its tokens within their access claim and the rules, with aud as a string or an array', async () => {
    const token = await sign({ sub: 'dana', access: [{ type: 'repository', name: 'dana/app', actions: ['pull', 'push'] }] });
    expect((await pushImageAs(reg.app, bearer(token), 'dana/app')).res.statusCode).toBe(201);
    const array = await sign({ sub: 'dana', access: [{ type: 'repository', name: 'dana/app', actions: ['pull'] }] }, { aud: ['other', 'registry.example'] });
    expect((await call(reg.app, bearer(array), { method: 'GET', url: '/v2/dana/app/manifests/v1' })).statusCode).toBe(200);
    // The token grants push on shared/x, the rules do not: denied.
    const wide = await sign({ sub: 'dana', access: [{ type: 'repository', name: 'shared/x', actions: ['pull', 'push'] }] });
    const res = await call(reg.app, bearer(wide), { method: 'POST', url: '/v2/shared/x/blobs/uploads/' });
    expect(res.statusCode).toBe(403);
    expect(errorOf(res)).toBe('DENIED');
  });

  it('refuses tokens for another audience, expired ones, and ones signed by an unknown key', async () => {
    const access = [{ type: 'repository', name: 'dana/app', actions: ['pull'] }];
    const other = (await generateKeyPair('ES256')).privateKey;
    const tokens = [
      await sign({ sub: 'dana', access }, { aud: 'someone-else' }),
      await sign({ sub: 'dana', access }, { exp: Math.floor(Date.now() / 1000) - 120 }),
      await sign({ sub: 'dana', access }, { kid: 'unknown-kid' }),
      await new SignJWT({ access }).setProtectedHeader({ alg: 'ES256', kid: 'issuer-key-1' }).setIssuer('auth.example').setAudience('registry.example').setSubject('dana').setExpirationTime('5m').sign(other),
    ];
    for (const token of tokens) {
      const res = await call(reg.app, bearer(token), { method: 'GET', url: '/v2/dana/app/manifests/v1' });
      expect(res.statusCode).toBe(401);
      expect(parseChallenge(res.headers['www-authenticate'] as string).params.error).toBe('invalid_token');
    }
  });

  it('takes no Basic credentials (there is no user list), and serves no token endpoint', async () => {
    const res = await call(reg.app, `Basic ${Buffer.from('dana:pw').toString('base64')}`, { method: 'GET', url: '/v2/' });
    expect(res.statusCode).toBe(401);
    expect((await call(reg.app, undefined, { method: 'GET', url: '/auth/token' })).statusCode).toBe(404);
  });
});

describe('the guard', () => {
  it('refuses a route that declares no need, with auth on and with auth off', async () => {
    for (const auth of [undefined, 'on'] as const) {
      const app = Fastify({ logger: false });
      registerErrorHandling(app, undefined);
      const fakeAuth = auth ? ({ authenticator: {}, authorizer: {}, challenge: { scheme: 'basic', realm: 'x' }, keys: {}, close() {} } as never) : undefined;
      registerGuard(app, fakeAuth, undefined);
      app.get('/undeclared', async () => 'reached');
      app.get('/declared', { config: { need: { kind: 'public' } } }, async () => 'reached');
      const undeclared = await app.inject({ method: 'GET', url: '/undeclared' });
      expect(undeclared.statusCode).toBe(403);
      expect(undeclared.body).not.toContain('reached');
      expect((await app.inject({ method: 'GET', url: '/declared' })).body).toBe('reached');
      expect((await app.inject({ method: 'GET', url: '/nowhere' })).statusCode).toBe(404);
      await app.close();
    }
  });
});
