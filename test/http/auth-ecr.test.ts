// Signing in to /v2/ as user AWS with the password GetAuthorizationToken gives (`aws ecr
// get-login-password | docker login --username AWS --password-stdin`), with ECR's challenge,
// ECR's answer to an expired password, the login throttle, and the access rules.
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EcrCredentials, LOGIN_PASSWORD_TTL_MS } from '../../src/auth/ecr-credentials.js';
import type { EcrCredential } from '../../src/config/config.js';
import type { ConfigFile } from '../../src/config/schema.js';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/config.js';
import { startRegistry, tempDir, type TestRegistry } from '../helpers.js';
import { basic, bearer, call, errorOf, parseChallenge, pushImageAs, writeHtpasswd } from './auth-support.js';

const CI: EcrCredential = { accessKeyId: 'AKIAEXAMPLECI00001', secretAccessKey: 'ci-secret-ci-secret-ci-secret', user: 'ci' };
const READER: EcrCredential = { accessKeyId: 'AKIAEXAMPLEREADER1', secretAccessKey: 'reader-secret-reader-secret', user: 'reader' };

const ACCESS: ConfigFile['access'] = {
  repositories: {
    'app/**': { users: { ci: ['pull', 'push', 'delete', 'manage'], reader: ['pull'], alice: ['pull', 'push'] } },
  },
};

function ecrSection(credentials: readonly EcrCredential[]): NonNullable<ConfigFile['ecr']> {
  return {
    enabled: true,
    accountid: '123456789012',
    region: 'us-east-1',
    createonpush: true,
    credentials: credentials.map((c) => ({ accesskeyid: c.accessKeyId, secretaccesskey: c.secretAccessKey, user: c.user })),
  };
}

/** `Basic base64(AWS:<password>)`, as docker sends it after `docker login -u AWS`. */
function awsLogin(password: string): string {
  return basic('AWS', password);
}

/** A password as GetAuthorizationToken gives it; issued elsewhere: the passwords are stateless. */
function passwordFor(credential: EcrCredential, issuedAt = Date.now()): string {
  return new EcrCredentials([credential], { now: () => issuedAt }).issueLoginPassword(credential).password;
}

const EXPIRED_TEXT = 'Your authorization token has expired. Reauthenticate and try again.';

describe('ECR logins on /v2/ (no auth section)', () => {
  let reg: TestRegistry;

  beforeAll(async () => {
    reg = await startRegistry({ ecr: ecrSection([CI, READER]), access: ACCESS });
  });
  afterAll(async () => {
    await reg?.destroy();
  });

  it('refuses the anonymous caller with ECR\'s Basic challenge, its realm the request\'s base URL', async () => {
    for (const [method, url] of [['GET', '/v2/'], ['GET', '/v2/app/web/manifests/v1'], ['POST', '/v2/app/web/blobs/uploads/']] as const) {
      const res = await call(reg.app, undefined, { method, url, headers: { host: 'registry.test:5000' } });
      expect(res.statusCode, `${method} ${url}`).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Basic realm="http://registry.test:5000/",service="ecr.amazonaws.com"');
      expect(errorOf(res)).toBe('UNAUTHORIZED');
    }
  });

  it('lets user AWS in with a GetAuthorizationToken password, as the key pair\'s user', async () => {
    const res = await call(reg.app, awsLogin(passwordFor(CI)), { method: 'GET', url: '/v2/' });
    expect(res.statusCode).toBe(200);
  });

  it('answers a wrong password with 401 and ECR\'s challenge', async () => {
    for (const password of ['wrong', passwordFor(CI).slice(0, -2), `${passwordFor(CI)}x`]) {
      const res = await call(reg.app, awsLogin(password), { method: 'GET', url: '/v2/', remoteAddress: '10.1.0.1' });
      expect(res.statusCode).toBe(401);
      expect(errorOf(res)).toBe('UNAUTHORIZED');
      expect(res.headers['www-authenticate']).toBe('Basic realm="http://localhost:80/",service="ecr.amazonaws.com"');
    }
    // Another user name is no ECR login, and there are no htpasswd users: refused the same way.
    const other = await call(reg.app, basic('ci', passwordFor(CI)), { method: 'GET', url: '/v2/', remoteAddress: '10.1.0.2' });
    expect(other.statusCode).toBe(401);
  });

  it('answers an expired password with 403 DENIED and ECR\'s text', async () => {
    const expired = passwordFor(CI, Date.now() - LOGIN_PASSWORD_TTL_MS - 1000);
    const res = await call(reg.app, awsLogin(expired), { method: 'GET', url: '/v2/app/web/tags/list' });
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({ errors: [{ code: 'DENIED', message: EXPIRED_TEXT }] });
    expect(res.headers['www-authenticate']).toBeUndefined();
  });

  it('counts wrong passwords per key: forgeries naming a key lock it there, garbage locks no one else', async () => {
    const address = '10.2.0.1';
    const right = passwordFor(CI);
    const forged = right.replace(/\.[^.]+$/, '.AAAA');
    for (let i = 0; i < 5; i++) {
      expect((await call(reg.app, awsLogin(`guess-${i}`), { method: 'GET', url: '/v2/', remoteAddress: address })).statusCode).toBe(401);
    }
    // Garbage from a shared address does not lock the ECR users out.
    expect((await call(reg.app, awsLogin(right), { method: 'GET', url: '/v2/', remoteAddress: address })).statusCode).toBe(200);
    for (let i = 0; i < 5; i++) {
      expect((await call(reg.app, awsLogin(forged), { method: 'GET', url: '/v2/', remoteAddress: address })).statusCode).toBe(401);
    }
    const locked = await call(reg.app, awsLogin(right), { method: 'GET', url: '/v2/', remoteAddress: address });
    expect(locked.statusCode).toBe(429);
    expect(errorOf(locked)).toBe('TOOMANYREQUESTS');
    expect(Number(locked.headers['retry-after'])).toBeGreaterThan(0);
    const otherKey = await call(reg.app, awsLogin(passwordFor(READER)), { method: 'GET', url: '/v2/', remoteAddress: address });
    expect(otherKey.statusCode).toBe(200);
    const elsewhere = await call(reg.app, awsLogin(right), { method: 'GET', url: '/v2/', remoteAddress: '10.2.0.2' });
    expect(elsewhere.statusCode).toBe(200);
  });

  it('applies the access rules to the key pair\'s user: pull only cannot push', async () => {
    const ci = awsLogin(passwordFor(CI));
    const reader = awsLogin(passwordFor(READER));
    const pushed = await pushImageAs(reg.app, ci, 'app/web', 'v1');
    expect(pushed.res.statusCode, pushed.res.body).toBe(201);
    const pulled = await call(reg.app, reader, { method: 'GET', url: '/v2/app/web/manifests/v1', headers: { accept: pushed.manifest!.mediaType } });
    expect(pulled.statusCode).toBe(200);
    const refused = await pushImageAs(reg.app, reader, 'app/web', 'v2');
    expect(refused.res.statusCode).toBe(403);
    expect(errorOf(refused.res)).toBe('DENIED');
    // Outside app/** neither may do anything.
    const outside = await call(reg.app, ci, { method: 'GET', url: '/v2/other/x/tags/list' });
    expect(outside.statusCode).toBe(403);
  });
});

describe('ECR logins after a key pair is removed from the configuration', () => {
  let root: string;

  beforeAll(async () => {
    root = await tempDir('ocireg-ecr-removed-');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('refuses the removed key pair\'s password as a wrong one, and keeps the others\'', async () => {
    const ciPassword = passwordFor(CI);
    const readerPassword = passwordFor(READER);
    const before = await startRegistry({ ecr: ecrSection([CI, READER]), access: ACCESS }, root);
    try {
      expect((await call(before.app, awsLogin(ciPassword), { method: 'GET', url: '/v2/' })).statusCode).toBe(200);
    } finally {
      await before.close();
    }
    const after = await startRegistry({ ecr: ecrSection([READER]), access: ACCESS }, root);
    try {
      const refused = await call(after.app, awsLogin(ciPassword), { method: 'GET', url: '/v2/' });
      expect(refused.statusCode).toBe(401);
      expect(errorOf(refused)).toBe('UNAUTHORIZED');
      expect((await call(after.app, awsLogin(readerPassword), { method: 'GET', url: '/v2/' })).statusCode).toBe(200);
    } finally {
      await after.close();
    }
  });
});

describe('ECR logins with htpasswd users and the token server', () => {
  let dir: string;
  let reg: TestRegistry;
  const tokenRequest = (authorization: string | undefined, scope: string, extra = '') =>
    call(reg.app, authorization, { method: 'GET', url: `/auth/token?service=test-service&scope=${encodeURIComponent(scope)}${extra}` });

  beforeAll(async () => {
    dir = await tempDir('ocireg-ecr-token-');
    reg = await startRegistry({
      auth: {
        htpasswd: { path: await writeHtpasswd(dir) },
        tokenserver: { enabled: true, issuer: 'test-issuer', service: 'test-service', key: join(dir, 'key.pem') },
      },
      ecr: ecrSection([CI, READER]),
      access: ACCESS,
    });
  });
  afterAll(async () => {
    await reg?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps the Bearer challenge of the token server', async () => {
    const res = await call(reg.app, undefined, { method: 'GET', url: '/v2/' });
    expect(res.statusCode).toBe(401);
    expect(parseChallenge(res.headers['www-authenticate'] as string).scheme).toBe('Bearer');
  });

  it('gives user AWS a token bounded by its key pair\'s rights, and no refresh token', async () => {
    const res = await tokenRequest(awsLogin(passwordFor(READER)), 'repository:app/web:pull,push', '&account=AWS&offline_token=true');
    expect(res.statusCode, res.body).toBe(200);
    const answer = res.json() as { token: string; refresh_token?: string };
    expect(answer.refresh_token).toBeUndefined();
    const claims = decodeJwt(answer.token);
    expect(claims.sub).toBe('reader');
    expect(claims.access).toEqual([{ type: 'repository', name: 'app/web', actions: ['pull'] }]);
  });

  it('lets the token push where the key pair\'s user may, and ends it when the key pair is gone', async () => {
    const res = await tokenRequest(awsLogin(passwordFor(CI)), 'repository:app/api:pull,push');
    expect(res.statusCode, res.body).toBe(200);
    const token = (res.json() as { token: string }).token;
    const pushed = await pushImageAs(reg.app, bearer(token), 'app/api', 'v1');
    expect(pushed.res.statusCode, pushed.res.body).toBe(201);
    // The token of an ECR login is checked against the key pair, not against htpasswd: forged
    // subjects or key ids do not get through (the signature covers them), so try the real thing
    // with a registry that no longer lists the key pair.
    const other = await startRegistry(
      {
        auth: {
          htpasswd: { path: join(dir, 'htpasswd') },
          tokenserver: { enabled: true, issuer: 'test-issuer', service: 'test-service', key: join(dir, 'key.pem') },
        },
        ecr: ecrSection([READER]),
        access: ACCESS,
      },
    );
    try {
      const refused = await call(other.app, bearer(token), { method: 'GET', url: '/v2/app/api/tags/list' });
      expect(refused.statusCode).toBe(401);
    } finally {
      await other.destroy();
    }
  });

  it('answers an expired password at the token endpoint with 403 DENIED, and a wrong one with 401', async () => {
    const expired = await tokenRequest(awsLogin(passwordFor(CI, Date.now() - LOGIN_PASSWORD_TTL_MS)), 'repository:app/web:pull');
    expect(expired.statusCode).toBe(403);
    expect(expired.json()).toEqual({ errors: [{ code: 'DENIED', message: EXPIRED_TEXT }] });
    const wrong = await tokenRequest(awsLogin('wrong'), 'repository:app/web:pull');
    expect(wrong.statusCode).toBe(401);
  });

  it('still signs in htpasswd users, and takes AWS logins on /v2/ directly too', async () => {
    expect((await tokenRequest(basic('alice'), 'repository:app/web:pull')).statusCode).toBe(200);
    const direct = await call(reg.app, awsLogin(passwordFor(READER)), { method: 'GET', url: '/v2/app/web/tags/list' });
    expect(direct.statusCode).not.toBe(401);
    expect(direct.statusCode).not.toBe(403);
  });
});

describe('ECR with htpasswd and no token server', () => {
  let dir: string;
  let reg: TestRegistry;

  beforeAll(async () => {
    dir = await tempDir('ocireg-ecr-basic-');
    reg = await startRegistry({
      http: { host: 'https://registry.example.com:5000/' },
      auth: { htpasswd: { realm: 'ignored-realm', path: await writeHtpasswd(dir) } },
      ecr: ecrSection([CI]),
      access: ACCESS,
    });
  });
  afterAll(async () => {
    await reg?.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('challenges with ECR\'s Basic realm at http.host, and lets both kinds of user in', async () => {
    const res = await call(reg.app, undefined, { method: 'GET', url: '/v2/' });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Basic realm="https://registry.example.com:5000/",service="ecr.amazonaws.com"');
    expect((await call(reg.app, basic('alice'), { method: 'GET', url: '/v2/' })).statusCode).toBe(200);
    expect((await call(reg.app, awsLogin(passwordFor(CI)), { method: 'GET', url: '/v2/' })).statusCode).toBe(200);
    const wrong = await call(reg.app, basic('alice', 'nope'), { method: 'GET', url: '/v2/', remoteAddress: '10.3.0.1' });
    expect(wrong.headers['www-authenticate']).toBe('Basic realm="https://registry.example.com:5000/",service="ecr.amazonaws.com"');
  });
});

describe('a route whose need is signed', () => {
  let root: string;

  beforeAll(async () => {
    root = await tempDir('ocireg-ecr-signed-');
  });
  afterAll(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('reaches its handler whatever the Authorization header says (the surface verifies), and counts no login', async () => {
    const config = loadConfig({ env: {}, overrides: { ecr: ecrSection([CI]), access: ACCESS, storage: { filesystem: { rootdirectory: root } } } });
    const app = await buildApp(config, { logger: false });
    try {
      app.get('/probe/signed', { config: { need: { kind: 'signed' } } }, async (request) => ({ identity: request.identity.kind }));
      app.get('/probe/undeclared', async () => ({ reached: true }));
      await app.ready();
      for (const authorization of [undefined, 'AWS4-HMAC-SHA256 Credential=x', awsLogin('wrong'), 'Bearer nonsense']) {
        const res = await call(app, authorization, { method: 'GET', url: '/probe/signed', remoteAddress: '10.4.0.1' });
        expect(res.statusCode, String(authorization)).toBe(200);
        expect(res.json()).toEqual({ identity: 'anonymous' });
      }
      // No failed login was counted for those: a right password from the same address still works.
      for (let i = 0; i < 5; i++) await call(app, awsLogin('wrong'), { method: 'GET', url: '/probe/signed', remoteAddress: '10.4.0.1' });
      expect((await call(app, awsLogin(passwordFor(CI)), { method: 'GET', url: '/v2/', remoteAddress: '10.4.0.1' })).statusCode).toBe(200);
      // A route that declares nothing is still refused.
      expect((await call(app, awsLogin(passwordFor(CI)), { method: 'GET', url: '/probe/undeclared' })).statusCode).toBe(403);
    } finally {
      await app.close();
    }
  });
});
