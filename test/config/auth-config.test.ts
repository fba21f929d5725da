import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { useConfigDir } from './support.js';

const fixture = useConfigDir();
const { load, configError } = fixture;
let dir: string;
beforeEach(() => {
  dir = fixture.dir;
});

describe('auth, access, TLS and rate-limit keys', () => {
  it('reads a whole auth section from a file, resolving paths against the working folder', async () => {
    const path = join(dir, 'config.yml');
    await writeFile(
      path,
      `http:
  tls: { certificate: cert.pem, key: key.pem, clientcas: [ca1.pem, ca2.pem], minimumtls: tls1.3 }
  ratelimit: { rate: 10, burst: 40, methods: [{ method: GET, rate: 100 }] }
auth:
  htpasswd: { realm: my-realm, path: htpasswd }
  tokenserver: { enabled: true, issuer: me, service: reg, key: token.pem, expiration: 10m }
access:
  groups: { devs: [alice] }
  admins: [root]
  repositories:
    "team-a/**": { groups: { devs: [pull, push] }, anonymous: [pull] }
`,
    );
    const config = load({ path });
    expect(config.http.tls).toEqual({
      certificate: join(dir, 'cert.pem'),
      key: join(dir, 'key.pem'),
      clientCas: [join(dir, 'ca1.pem'), join(dir, 'ca2.pem')],
      minimumTls: 'TLSv1.3',
    });
    expect(config.http.rateLimit).toEqual({ rate: 10, burst: 40, methods: { GET: { rate: 100, burst: 100 } } });
    expect(config.auth).toEqual({
      htpasswd: { realm: 'my-realm', path: join(dir, 'htpasswd') },
      tokenServer: { issuer: 'me', service: 'reg', keyPath: join(dir, 'token.pem'), expirationMs: 600_000, refreshExpirationMs: 720 * 3600_000 },
    });
    expect(config.access?.admins).toEqual(['root']);
  });

  it('defaults: TLS 1.2, no client CAs, realm and issuer "ocireg", 5m tokens, the key under the storage root', () => {
    const config = load({
      overrides: { http: { tls: { certificate: 'c', key: 'k' } }, auth: { htpasswd: { path: 'h' }, tokenserver: { enabled: true } } },
    });
    expect(config.http.tls).toMatchObject({ clientCas: [], minimumTls: 'TLSv1.2' });
    expect(config.auth?.htpasswd?.realm).toBe('ocireg');
    expect(config.auth?.tokenServer).toMatchObject({ issuer: 'ocireg', service: 'ocireg', expirationMs: 300_000, keyPath: join(dir, 'storage', 'token-key.pem') });
  });

  it('takes every auth key from REGISTRY_* variables, lists comma-separated', () => {
    const config = load({
      env: {
        REGISTRY_AUTH_TOKEN_REALM: 'https://auth.example/token',
        REGISTRY_AUTH_TOKEN_SERVICE: 'registry.example',
        REGISTRY_AUTH_TOKEN_ISSUER: 'auth.example',
        REGISTRY_AUTH_TOKEN_JWKS: '/etc/jwks.json',
        REGISTRY_AUTH_TOKEN_SIGNINGALGORITHMS: 'ES256, RS256',
        REGISTRY_HTTP_TLS_CERTIFICATE: 'c.pem',
        REGISTRY_HTTP_TLS_KEY: 'k.pem',
        REGISTRY_HTTP_TLS_CLIENTCAS: 'a.pem,b.pem',
        REGISTRY_HTTP_RATELIMIT_RATE: '5',
      },
    });
    expect(config.auth?.token).toEqual({
      realm: 'https://auth.example/token',
      service: 'registry.example',
      issuer: 'auth.example',
      jwks: '/etc/jwks.json',
      signingAlgorithms: ['ES256', 'RS256'],
    });
    expect(config.http.tls?.clientCas).toEqual([join(dir, 'a.pem'), join(dir, 'b.pem')]);
    expect(config.http.rateLimit).toEqual({ rate: 5, burst: 5, methods: {} });
    const server = load({ env: { REGISTRY_AUTH_HTPASSWD_PATH: '/h', REGISTRY_AUTH_TOKENSERVER_ENABLED: 'true', REGISTRY_AUTH_TOKENSERVER_EXPIRATION: '1m' } });
    expect(server.auth?.tokenServer?.expirationMs).toBe(60_000);
    expect(server.auth?.htpasswd?.path).toBe('/h');
  });

  it('refuses what cannot work', () => {
    expect(configError({ overrides: { auth: {} } })).toMatch(/empty auth section would let nobody in/);
    expect(configError({ overrides: { auth: { tokenserver: { enabled: true }, token: { realm: 'r', service: 's', issuer: 'i', jwks: 'j' } } } })).toMatch(/not both/);
    expect(configError({ overrides: { auth: { token: { realm: 'r', service: 's', issuer: 'i' } } } })).toMatch(/rootcertbundle or jwks/);
    expect(configError({ overrides: { auth: { token: { realm: 'r', service: 's', issuer: 'i', jwks: 'j', signingalgorithms: ['HS256', 'none'] } } } })).toMatch(
      /HS256, none not accepted/,
    );
    expect(configError({ overrides: { auth: { htpasswd: { path: 'h' }, tokenserver: { enabled: true, expiration: '0s' } } } })).toMatch(/expiration must be greater than zero/);
    expect(configError({ overrides: { http: { tls: { certificate: 'c', key: 'k', minimumtls: 'tls1.0' as never } } } })).toMatch(/minimumtls/);
    expect(configError({ overrides: { http: { ratelimit: { rate: 0 } } } })).toMatch(/ratelimit\.rate/);
    expect(configError({ overrides: { http: { ratelimit: { rate: 1, methods: [{ method: 'GET', rate: 1 }, { method: 'GET', rate: 2 }] } } } })).toMatch(/GET is listed twice/);
    expect(configError({ overrides: { access: { repositories: { '**': { everyone: ['pull'] } as never } } } })).toMatch(/unknown key/);
  });

  it('leaves auth off without an auth section, even with tokenserver disabled', () => {
    expect(load().auth).toBeUndefined();
    expect(configError({ overrides: { auth: { tokenserver: { enabled: false } } } })).toMatch(/empty auth section/);
  });
});
