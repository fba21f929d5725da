import { generateKeyPairSync } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { compactVerify, decodeJwt, decodeProtectedHeader } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { rejectionOf, useSigningKeys } from './support.js';
import { loadSigningKey, type SigningKey } from '../../src/auth/signing-key.js';
import { TokenIssuer } from '../../src/auth/token-issuer.js';
import { createOwnTokenVerifier, TokenInvalidError } from '../../src/auth/token-verifier.js';

const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);
const ISSUER = 'ocireg-issuer';
const SERVICE = 'registry.example.com';

const keys = useSigningKeys('ocireg-token-issuer-');
let dir: string;
let key: SigningKey;
let otherKey: SigningKey;
beforeAll(() => {
  ({ dir, key, otherKey } = keys);
});

function issuer(options: { now?: () => number; key?: SigningKey; service?: string } = {}): TokenIssuer {
  return new TokenIssuer({
    key: options.key ?? key,
    issuer: ISSUER,
    service: options.service ?? SERVICE,
    expirationMs: 5 * 60_000,
    refreshExpirationMs: 720 * 3_600_000,
    now: options.now ?? (() => NOW),
  });
}

const refusal = (promise: Promise<unknown>) => rejectionOf(promise, TokenInvalidError);

describe('TokenIssuer.issueAccessToken', () => {
  it('writes the header and every claim of Docker token authentication', async () => {
    const access = [
      { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ];
    const issued = await issuer().issueAccessToken({ subject: 'alice', access, clientId: 'docker' });

    expect(decodeProtectedHeader(issued.token)).toEqual({ alg: 'ES256', typ: 'JWT', kid: key.kid });
    const iat = NOW / 1000;
    const claims = decodeJwt(issued.token);
    expect(claims).toEqual({
      iss: ISSUER,
      sub: 'alice',
      aud: SERVICE,
      exp: iat + 300,
      nbf: iat,
      iat,
      jti: expect.stringMatching(/^[A-Za-z0-9_-]{24}$/),
      access,
      client_id: 'docker',
    });
    expect(issued.expiresIn).toBe(300);
    expect(issued.issuedAt).toBe('2025-01-15T12:00:00Z');
    // The signature is our key's, over exactly these bytes.
    await expect(compactVerify(issued.token, key.publicKey, { algorithms: ['ES256'] })).resolves.toBeDefined();
  });

  it('gives an anonymous caller an empty subject, and names the access key when there is one', async () => {
    const anonymous = decodeJwt((await issuer().issueAccessToken({ subject: '', access: [] })).token);
    expect(anonymous.sub).toBe('');
    expect(anonymous.access).toEqual([]);
    expect(anonymous).not.toHaveProperty('client_id');
    expect(anonymous).not.toHaveProperty('ocireg_key');

    const viaKey = decodeJwt((await issuer().issueAccessToken({ subject: 'ci', access: [], keyId: 'AKIDEXAMPLE' })).token);
    expect(viaKey.ocireg_key).toBe('AKIDEXAMPLE');
  });

  it('gives every token its own jti', async () => {
    const tokens = await Promise.all(Array.from({ length: 20 }, () => issuer().issueAccessToken({ subject: 'a', access: [] })));
    expect(new Set(tokens.map((t) => decodeJwt(t.token).jti)).size).toBe(20);
  });

  it('is accepted by the verifier of the same key, issuer and service', async () => {
    const access = [{ type: 'repository', name: 'team/app', actions: ['pull'] }];
    const issued = await issuer().issueAccessToken({ subject: 'alice', access, keyId: 'k1' });
    const verified = await createOwnTokenVerifier({ key, issuer: ISSUER, service: SERVICE, now: () => NOW }).verify(issued.token);
    expect(verified).toEqual({ subject: 'alice', access, keyId: 'k1', external: false, expiresAt: NOW + 300_000 });
  });

  it('signs with the algorithm of the key', async () => {
    const path = join(dir, 'ed25519.pem');
    await writeFile(path, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const edKey = await loadSigningKey(path);
    const issued = await issuer({ key: edKey }).issueAccessToken({ subject: 'a', access: [] });
    expect(decodeProtectedHeader(issued.token)).toMatchObject({ alg: 'EdDSA', kid: edKey.kid });
    const verifier = createOwnTokenVerifier({ key: edKey, issuer: ISSUER, service: SERVICE, now: () => NOW });
    await expect(verifier.verify(issued.token)).resolves.toMatchObject({ subject: 'a' });
  });
});

describe('refresh tokens', () => {
  it('carry the refresh markers and no access claim, and live refreshExpiration', async () => {
    const issued = await issuer().issueRefreshToken({ subject: 'alice', clientId: 'docker', keyId: 'k1' });

    expect(decodeProtectedHeader(issued.token)).toEqual({ alg: 'ES256', typ: 'refresh+jwt', kid: key.kid });
    const claims = decodeJwt(issued.token);
    expect(claims).toMatchObject({ iss: ISSUER, sub: 'alice', aud: SERVICE, token_use: 'refresh', client_id: 'docker', ocireg_key: 'k1' });
    expect(claims).not.toHaveProperty('access');
    expect(claims.exp! - claims.iat!).toBe(720 * 3600);
    expect(issued.expiresIn).toBe(720 * 3600);
  });

  it('round-trip through verifyRefreshToken', async () => {
    const tokens = issuer();
    const withAll = await tokens.issueRefreshToken({ subject: 'alice', clientId: 'docker', keyId: 'k1' });
    await expect(tokens.verifyRefreshToken(withAll.token)).resolves.toEqual({ subject: 'alice', clientId: 'docker', keyId: 'k1' });
    const bare = await tokens.issueRefreshToken({ subject: 'bob' });
    await expect(tokens.verifyRefreshToken(bare.token)).resolves.toEqual({ subject: 'bob' });
  });

  it('are never accepted as access tokens', async () => {
    const refresh = await issuer().issueRefreshToken({ subject: 'alice' });
    const verifier = createOwnTokenVerifier({ key, issuer: ISSUER, service: SERVICE, now: () => NOW });
    await refusal(verifier.verify(refresh.token));
  });

  it('cannot be replaced by an access token', async () => {
    const access = await issuer().issueAccessToken({ subject: 'alice', access: [] });
    await refusal(issuer().verifyRefreshToken(access.token));
  });

  it('are refused once expired, from another key, or for another service', async () => {
    const issued = await issuer().issueRefreshToken({ subject: 'alice' });
    const later = NOW + 720 * 3_600_000 + 61_000;
    expect((await refusal(issuer({ now: () => later }).verifyRefreshToken(issued.token))).reason).toBe('expired');
    // Within the 60 s leeway it still works.
    await expect(issuer({ now: () => later - 2_000 }).verifyRefreshToken(issued.token)).resolves.toEqual({ subject: 'alice' });
    expect((await refusal(issuer({ key: otherKey }).verifyRefreshToken(issued.token))).reason).toBe('bad signature');
    await refusal(issuer({ service: 'other-registry' }).verifyRefreshToken(issued.token));
  });

  it('are refused when edited or malformed', async () => {
    const issued = await issuer().issueRefreshToken({ subject: 'alice' });
    const [header, , signature] = issued.token.split('.');
    const edited = Buffer.from(JSON.stringify({ ...decodeJwt(issued.token), sub: 'admin' })).toString('base64url');
    await refusal(issuer().verifyRefreshToken(`${header}.${edited}.${signature}`));
    await refusal(issuer().verifyRefreshToken('not-a-token'));
  });
});
