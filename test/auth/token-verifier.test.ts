import { execFileSync } from 'node:child_process';
import { createPrivateKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, decodeJwt, exportJWK, SignJWT, UnsecuredJWT, type JWTPayload } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { rejectionOf, useSigningKeys } from './support.js';
import { ConfigError, type AuthConfig } from '../../src/config/config.js';
import type { SigningKey } from '../../src/auth/signing-key.js';
import { TokenIssuer } from '../../src/auth/token-issuer.js';
import { createExternalTokenVerifier, createOwnTokenVerifier, TokenInvalidError } from '../../src/auth/token-verifier.js';

const ISSUER = 'ocireg-issuer';
const SERVICE = 'registry.example.com';
const ACCESS = [{ type: 'repository', name: 'team/app', actions: ['pull'] }];

const keys = useSigningKeys('ocireg-token-verifier-');
let dir: string;
let key: SigningKey;
let otherKey: SigningKey;
beforeAll(() => {
  ({ dir, key, otherKey } = keys);
});

const refusal = (promise: Promise<unknown>) => rejectionOf(promise, TokenInvalidError);

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

describe('createOwnTokenVerifier', () => {
  const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);
  const iat = NOW / 1000;
  const verifier = (now = NOW) => createOwnTokenVerifier({ key, issuer: ISSUER, service: SERVICE, now: () => now });
  const issue = (options: { now?: number; issuer?: string; service?: string; signWith?: SigningKey } = {}) =>
    new TokenIssuer({
      key: options.signWith ?? key,
      issuer: options.issuer ?? ISSUER,
      service: options.service ?? SERVICE,
      expirationMs: 300_000,
      refreshExpirationMs: 3_600_000,
      now: () => options.now ?? NOW,
    }).issueAccessToken({ subject: 'alice', access: ACCESS });
  /** A token signed with our own key, with claims of the test's choosing. */
  const signed = (payload: JWTPayload, header: Record<string, unknown> = {}) =>
    new SignJWT(payload).setProtectedHeader({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header }).sign(key.privateKey);
  const goodClaims = (): JWTPayload => ({ iss: ISSUER, sub: 'alice', aud: SERVICE, iat, nbf: iat, exp: iat + 300, jti: 'j1', access: ACCESS });

  it('accepts our token and reports its subject, access and expiry', async () => {
    const { token } = await issue();
    await expect(verifier().verify(token)).resolves.toEqual({ subject: 'alice', access: ACCESS, external: false, expiresAt: NOW + 300_000 });
  });

  it('accepts an aud array that contains the service', async () => {
    const token = await signed({ ...goodClaims(), aud: ['other', SERVICE] });
    await expect(verifier().verify(token)).resolves.toMatchObject({ subject: 'alice' });
  });

  it('refuses an unsigned token (alg none)', async () => {
    const token = new UnsecuredJWT(goodClaims()).encode();
    expect(token.endsWith('.')).toBe(true);
    await refusal(verifier().verify(token));
    // The same, hand-built with our kid and typ.
    const handmade = `${b64({ alg: 'none', typ: 'JWT', kid: key.kid })}.${b64(goodClaims())}.`;
    await refusal(verifier().verify(handmade));
  });

  it('refuses HS256 tokens whose HMAC secret is our public key (PEM or JWK)', async () => {
    const pem = key.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    for (const secret of [pem, JSON.stringify(key.publicJwk), JSON.stringify(key.jwks())]) {
      const token = await new SignJWT(goodClaims())
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: key.kid })
        .sign(new TextEncoder().encode(secret));
      expect((await refusal(verifier().verify(token))).reason).toBe('algorithm not allowed');
    }
  });

  it('refuses a token for another audience or from another issuer', async () => {
    expect((await refusal(verifier().verify((await issue({ service: 'other-registry' })).token))).reason).toBe('aud claim rejected');
    expect((await refusal(verifier().verify((await issue({ issuer: 'someone-else' })).token))).reason).toBe('iss claim rejected');
  });

  it('refuses an expired token beyond the 60 s leeway, and accepts it within', async () => {
    const { token } = await issue();
    const expiry = NOW + 300_000;
    await expect(verifier(expiry + 59_000).verify(token)).resolves.toMatchObject({ subject: 'alice' });
    expect((await refusal(verifier(expiry + 61_000).verify(token))).reason).toBe('expired');
  });

  it('refuses a token that is not valid yet beyond the leeway, and accepts it within', async () => {
    await expect(verifier().verify((await issue({ now: NOW + 30_000 })).token)).resolves.toMatchObject({ subject: 'alice' });
    expect((await refusal(verifier().verify((await issue({ now: NOW + 120_000 })).token))).reason).toBe('nbf claim rejected');
    // iat in the future, nbf fine: still refused.
    const futureIat = await signed({ ...goodClaims(), iat: iat + 3600 });
    expect((await refusal(verifier().verify(futureIat))).reason).toBe('iat claim rejected');
  });

  it('refuses a token whose access claim was edited after signing', async () => {
    const { token } = await issue();
    const [header, , signature] = token.split('.');
    const widened = { ...decodeJwt(token), access: [{ type: 'repository', name: 'team/app', actions: ['pull', 'push', 'delete'] }] };
    expect((await refusal(verifier().verify(`${header}.${b64(widened)}.${signature}`))).reason).toBe('bad signature');
  });

  it("refuses a token signed by another server's key with the same issuer and service", async () => {
    const { token } = await issue({ signWith: otherKey });
    expect((await refusal(verifier().verify(token))).reason).toBe('bad signature');
    // Even when it claims our kid.
    const claimingOurKid = await new SignJWT(goodClaims())
      .setProtectedHeader({ alg: otherKey.alg, typ: 'JWT', kid: key.kid })
      .sign(otherKey.privateKey);
    await refusal(verifier().verify(claimingOurKid));
  });

  it('refuses malformed tokens', async () => {
    const { token } = await issue();
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const malformed = [
      '',
      'abc',
      `${header}.${payload}`,
      `${token}.extra`,
      `!!!.${payload}.${signature}`,
      `${header}.***.${signature}`,
      `${b64('not json')}.${payload}.${signature}`,
      `${header}.${b64('not json')}.${signature}`,
      `${header}.${b64('[1,2]')}.${signature}`,
    ];
    for (const bad of malformed) await refusal(verifier().verify(bad));
  });

  it('refuses a well-signed token whose access claim is not an array of {type, name, actions}', async () => {
    const shapes: unknown[] = [
      'repository:team/app:pull',
      { type: 'repository', name: 'team/app', actions: ['pull'] },
      [{ type: 'repository', name: 'team/app', actions: 'pull' }],
      [{ type: 'repository', actions: ['pull'] }],
      [{ type: 1, name: 'team/app', actions: ['pull'] }],
      [{ type: 'repository', name: 'team/app', actions: [1] }],
      [null],
      [['repository', 'team/app', ['pull']]],
    ];
    for (const access of shapes) {
      expect((await refusal(verifier().verify(await signed({ ...goodClaims(), access })))).reason).toBe('malformed access claim');
    }
  });

  it('refuses a token lacking a required claim or our typ', async () => {
    for (const claim of ['sub', 'exp', 'nbf', 'iat', 'jti', 'access']) {
      const claims = goodClaims();
      delete claims[claim];
      await refusal(verifier().verify(await signed(claims)));
    }
    await refusal(verifier().verify(await signed(goodClaims(), { typ: 'at+jwt' })));
  });

  it('refuses a token carrying the refresh marker', async () => {
    await refusal(verifier().verify(await signed({ ...goodClaims(), token_use: 'refresh' })));
  });
});

// --- external issuer ---------------------------------------------------------------------------------

interface Pki {
  rootCert: string;
  rootKey: KeyObject;
  intermediateCert: string;
  leafCert: string;
  leafKey: KeyObject;
  directLeafCert: string;
  directLeafKey: KeyObject;
  rogueRootCert: string;
  rogueLeafCert: string;
  rogueLeafKey: KeyObject;
  secondRootCert: string;
  impostorLeafCert: string;
  impostorLeafKey: KeyObject;
  plainCert: string;
  childOfPlainCert: string;
  childOfPlainKey: KeyObject;
}

/** A root CA, an intermediate CA and leaves, made with the openssl CLI as an operator would. */
async function makePki(at: string): Promise<Pki> {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: at, timeout: 20_000, stdio: 'pipe' });
  await writeFile(
    join(at, 'ext.cnf'),
    [
      '[ca]',
      'basicConstraints = critical, CA:TRUE',
      'keyUsage = critical, keyCertSign, cRLSign',
      '[leaf]',
      'basicConstraints = critical, CA:FALSE',
      'keyUsage = critical, digitalSignature',
      // No key identifiers: issuer and subject are then matched by name alone.
      '[anonymous]',
      'basicConstraints = critical, CA:FALSE',
      'authorityKeyIdentifier = none',
      'subjectKeyIdentifier = none',
      // Not a CA, and no key usage that would stop it from signing certificates.
      '[plain]',
      'basicConstraints = critical, CA:FALSE',
      '',
    ].join('\n'),
  );
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const selfSigned = (name: string, subject = name) =>
    openssl('req', '-x509', ...ec, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${subject}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  const issued = (name: string, by: string, section: 'ca' | 'leaf' | 'anonymous' | 'plain') => {
    openssl('req', '-new', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', `${name}.csr`, '-CA', `${by}.pem`, '-CAkey', `${by}.key`, '-set_serial', String(Date.now()),
      '-days', '2', '-extfile', 'ext.cnf', '-extensions', section, '-out', `${name}.pem`);
  };
  selfSigned('root');
  issued('intermediate', 'root', 'ca');
  issued('leaf', 'intermediate', 'leaf');
  issued('direct-leaf', 'root', 'leaf');
  selfSigned('rogue-root');
  issued('rogue-leaf', 'rogue-root', 'leaf');
  selfSigned('second-root');
  // A CA that borrows the trusted root's name, with a key of its own.
  selfSigned('impostor-root', 'root');
  issued('impostor-leaf', 'impostor-root', 'anonymous');
  issued('plain', 'root', 'plain');
  issued('child-of-plain', 'plain', 'leaf');

  const text = (name: string) => readFile(join(at, name), 'utf8');
  const privateKey = async (name: string) => createPrivateKey(await text(`${name}.key`));
  return {
    rootCert: await text('root.pem'),
    rootKey: await privateKey('root'),
    intermediateCert: await text('intermediate.pem'),
    leafCert: await text('leaf.pem'),
    leafKey: await privateKey('leaf'),
    directLeafCert: await text('direct-leaf.pem'),
    directLeafKey: await privateKey('direct-leaf'),
    rogueRootCert: await text('rogue-root.pem'),
    rogueLeafCert: await text('rogue-leaf.pem'),
    rogueLeafKey: await privateKey('rogue-leaf'),
    secondRootCert: await text('second-root.pem'),
    impostorLeafCert: await text('impostor-leaf.pem'),
    impostorLeafKey: await privateKey('impostor-leaf'),
    plainCert: await text('plain.pem'),
    childOfPlainCert: await text('child-of-plain.pem'),
    childOfPlainKey: await privateKey('child-of-plain'),
  };
}

const der = (pem: string) => new X509Certificate(pem).raw.toString('base64');

describe('createExternalTokenVerifier', () => {
  const EXT_ISSUER = 'https://auth.example.com';
  let pki: Pki;
  let config: NonNullable<AuthConfig['token']>;
  let jwksKey: KeyObject;
  /** The verifiers' clock: set once the certificates exist, whose validity starts when they are made. */
  let started: number;
  let nowSec: number;

  beforeAll(async () => {
    const at = await mkdtemp(join(dir, 'pki-'));
    pki = await makePki(at);
    started = Date.now() + 1_000;
    nowSec = Math.floor(started / 1000);
    // The bundle holds two CAs, as operators' bundles often do.
    await writeFile(join(at, 'bundle.pem'), `${pki.secondRootCert}\n${pki.rootCert}`);
    const jwksPair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    jwksKey = jwksPair.privateKey;
    const ignoredEncryptionKey = { ...(await exportJWK(generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey)), use: 'enc' };
    await writeFile(
      join(at, 'jwks.json'),
      JSON.stringify({ keys: [{ ...(await exportJWK(jwksPair.publicKey)), kid: 'jwks-key-1', alg: 'ES256', use: 'sig' }, ignoredEncryptionKey] }),
    );
    config = {
      realm: 'https://auth.example.com/token',
      service: SERVICE,
      issuer: EXT_ISSUER,
      rootCertBundle: join(at, 'bundle.pem'),
      jwks: join(at, 'jwks.json'),
      signingAlgorithms: ['ES256', 'RS256'],
    };
  });

  const claims = (extra: JWTPayload = {}): JWTPayload => ({
    iss: EXT_ISSUER,
    sub: 'carol',
    aud: SERVICE,
    iat: nowSec,
    nbf: nowSec,
    exp: nowSec + 300,
    access: ACCESS,
    ...extra,
  });
  const sign = (signer: KeyObject, header: Record<string, unknown>, payload: JWTPayload = claims()) =>
    new SignJWT(payload).setProtectedHeader({ alg: 'ES256', typ: 'JWT', ...header }).sign(signer);
  const verifier = (now: number = started, overrides: Partial<NonNullable<AuthConfig['token']>> = {}) =>
    createExternalTokenVerifier({ ...config, ...overrides }, () => now);

  it('accepts a token whose x5c chain (leaf, intermediate) ends at a bundle CA', async () => {
    const token = await sign(pki.leafKey, { x5c: [der(pki.leafCert), der(pki.intermediateCert)] });
    await expect((await verifier()).verify(token)).resolves.toEqual({
      subject: 'carol',
      access: ACCESS,
      external: true,
      expiresAt: (nowSec + 300) * 1000,
    });
  });

  it('accepts a leaf issued by a bundle CA directly, and a certificate that is itself in the bundle', async () => {
    const v = await verifier();
    await expect(v.verify(await sign(pki.directLeafKey, { x5c: [der(pki.directLeafCert)] }))).resolves.toMatchObject({ subject: 'carol' });
    await expect(v.verify(await sign(pki.rootKey, { x5c: [der(pki.rootCert)] }))).resolves.toMatchObject({ subject: 'carol' });
  });

  it('refuses an x5c chain from an untrusted CA', async () => {
    const v = await verifier();
    const rogue = await sign(pki.rogueLeafKey, { x5c: [der(pki.rogueLeafCert), der(pki.rogueRootCert)] });
    expect((await refusal(v.verify(rogue))).reason).toBe('untrusted certificate chain');
    const rogueAlone = await sign(pki.rogueLeafKey, { x5c: [der(pki.rogueLeafCert)] });
    expect((await refusal(v.verify(rogueAlone))).reason).toBe('untrusted certificate chain');
    // Issued in the name of the trusted root, but not signed by it.
    expect(new X509Certificate(pki.impostorLeafCert).checkIssued(new X509Certificate(pki.rootCert))).toBe(true);
    const impostor = await sign(pki.impostorLeafKey, { x5c: [der(pki.impostorLeafCert)] });
    expect((await refusal(v.verify(impostor))).reason).toBe('untrusted certificate chain');
  });

  it('refuses a chain whose links do not follow, and a non-CA certificate used as an issuer', async () => {
    const v = await verifier();
    const unlinked = await sign(pki.rogueLeafKey, { x5c: [der(pki.rogueLeafCert), der(pki.rootCert)] });
    expect((await refusal(v.verify(unlinked))).reason).toBe('broken certificate chain');
    const leafAsIssuer = await sign(pki.leafKey, { x5c: [der(pki.leafCert), der(pki.directLeafCert)] });
    expect((await refusal(v.verify(leafAsIssuer))).reason).toBe('broken certificate chain');
    // Signed by a certificate that the root issued, but not as a CA.
    expect(new X509Certificate(pki.childOfPlainCert).checkIssued(new X509Certificate(pki.plainCert))).toBe(true);
    const viaNonCa = await sign(pki.childOfPlainKey, { x5c: [der(pki.childOfPlainCert), der(pki.plainCert)] });
    expect((await refusal(v.verify(viaNonCa))).reason).toBe('broken certificate chain');
  });

  it('refuses a trusted x5c chain when the token was signed by another key', async () => {
    const token = await sign(pki.rogueLeafKey, { x5c: [der(pki.leafCert), der(pki.intermediateCert)] });
    expect((await refusal((await verifier()).verify(token))).reason).toBe('bad signature');
  });

  it('refuses a chain with a certificate outside its validity', async () => {
    const later = started + 3 * 86_400_000;
    const token = await sign(pki.leafKey, { x5c: [der(pki.leafCert), der(pki.intermediateCert)] }, claims({ exp: nowSec + 10 * 86_400 }));
    expect((await refusal((await verifier(later)).verify(token))).reason).toBe('certificate outside its validity');
  });

  it('refuses a malformed x5c', async () => {
    const v = await verifier();
    for (const x5c of ['abc', [], [42], ['!!!not-der!!!']]) {
      await refusal(v.verify(await sign(pki.leafKey, { x5c })));
    }
  });

  it('accepts a token whose kid names a JWKS key', async () => {
    const token = await sign(jwksKey, { kid: 'jwks-key-1' });
    await expect((await verifier()).verify(token)).resolves.toMatchObject({ subject: 'carol', external: true });
  });

  it("accepts a token whose kid is the RFC 7638 thumbprint of a bundle certificate's key", async () => {
    const kid = await calculateJwkThumbprint(await exportJWK(new X509Certificate(pki.rootCert).publicKey));
    await expect((await verifier()).verify(await sign(pki.rootKey, { kid }))).resolves.toMatchObject({ subject: 'carol' });
    // The same kid with another key's signature is refused.
    expect((await refusal((await verifier()).verify(await sign(pki.rogueLeafKey, { kid })))).reason).toBe('bad signature');
  });

  it('refuses an unknown kid, and a token that names no key', async () => {
    const v = await verifier();
    expect((await refusal(v.verify(await sign(jwksKey, { kid: 'no-such-key' })))).reason).toBe('unknown key id');
    await refusal(v.verify(await sign(jwksKey, {})));
  });

  it('refuses an algorithm outside signingalgorithms, and never accepts none or HS256', async () => {
    const rs256Only = await verifier(started, { signingAlgorithms: ['RS256'] });
    expect((await refusal(rs256Only.verify(await sign(jwksKey, { kid: 'jwks-key-1' })))).reason).toBe('algorithm not allowed');

    const v = await verifier();
    const unsigned = `${b64({ alg: 'none', kid: 'jwks-key-1' })}.${b64(claims())}.`;
    await refusal(v.verify(unsigned));
    const jwksText = await readFile(config.jwks!, 'utf8');
    const hmac = await new SignJWT(claims())
      .setProtectedHeader({ alg: 'HS256', kid: 'jwks-key-1' })
      .sign(new TextEncoder().encode(jwksText));
    expect((await refusal(v.verify(hmac))).reason).toBe('algorithm not allowed');
    // Even if a configuration listed it.
    const misconfigured = await verifier(started, { signingAlgorithms: ['HS256', 'ES256'] });
    await refusal(misconfigured.verify(hmac));
  });

  it('checks iss and aud; aud may be an array', async () => {
    const v = await verifier();
    const kid = { kid: 'jwks-key-1' };
    await expect(v.verify(await sign(jwksKey, kid, claims({ aud: ['other', SERVICE] })))).resolves.toMatchObject({ subject: 'carol' });
    expect((await refusal(v.verify(await sign(jwksKey, kid, claims({ aud: ['other'] }))))).reason).toBe('aud claim rejected');
    expect((await refusal(v.verify(await sign(jwksKey, kid, claims({ iss: 'https://evil.example.com' }))))).reason).toBe('iss claim rejected');
  });

  it('allows 60 s of clock skew on exp and nbf, no more; exp is required', async () => {
    const kid = { kid: 'jwks-key-1' };
    const token = await sign(jwksKey, kid);
    const expiry = (nowSec + 300) * 1000;
    await expect((await verifier(expiry + 50_000)).verify(token)).resolves.toMatchObject({ subject: 'carol' });
    expect((await refusal((await verifier(expiry + 70_000)).verify(token))).reason).toBe('expired');
    const early = await sign(jwksKey, kid, claims({ nbf: nowSec + 50 }));
    await expect((await verifier()).verify(early)).resolves.toMatchObject({ subject: 'carol' });
    const tooEarly = await sign(jwksKey, kid, claims({ nbf: nowSec + 70 }));
    expect((await refusal((await verifier()).verify(tooEarly))).reason).toBe('nbf claim rejected');
    const { exp: _exp, ...withoutExp } = claims();
    await refusal((await verifier()).verify(await sign(jwksKey, kid, withoutExp)));
  });

  it('treats a missing access claim as no access and refuses a malformed one', async () => {
    const v = await verifier();
    const kid = { kid: 'jwks-key-1' };
    const { access: _access, sub: _sub, ...bare } = claims();
    await expect(v.verify(await sign(jwksKey, kid, bare))).resolves.toEqual({
      subject: '',
      access: [],
      external: true,
      expiresAt: (nowSec + 300) * 1000,
    });
    expect((await refusal(v.verify(await sign(jwksKey, kid, claims({ access: 'repository:x:pull' }))))).reason).toBe('malformed access claim');
  });

  it('works with a bundle alone or a JWKS alone', async () => {
    const bundleOnly = await createExternalTokenVerifier({ ...config, jwks: undefined }, () => started);
    await expect(bundleOnly.verify(await sign(pki.directLeafKey, { x5c: [der(pki.directLeafCert)] }))).resolves.toBeDefined();
    await refusal(bundleOnly.verify(await sign(jwksKey, { kid: 'jwks-key-1' })));
    const jwksOnly = await createExternalTokenVerifier({ ...config, rootCertBundle: undefined }, () => started);
    await expect(jwksOnly.verify(await sign(jwksKey, { kid: 'jwks-key-1' }))).resolves.toBeDefined();
    await refusal(jwksOnly.verify(await sign(pki.directLeafKey, { x5c: [der(pki.directLeafCert)] })));
  });

  it('throws ConfigError at start for unreadable or invalid files', async () => {
    const at = await mkdtemp(join(dir, 'bad-'));
    const file = async (name: string, text: string) => {
      await writeFile(join(at, name), text);
      return join(at, name);
    };
    const secret = await exportJWK(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const bad: Array<Partial<NonNullable<AuthConfig['token']>>> = [
      { rootCertBundle: join(at, 'missing.pem') },
      { rootCertBundle: await file('empty.pem', 'no certificates here') },
      { rootCertBundle: await file('broken.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n') },
      { jwks: join(at, 'missing.json') },
      { jwks: await file('not-json.json', '{keys:') },
      { jwks: await file('no-keys.json', '{"keys": "none"}') },
      { jwks: await file('no-kid.json', JSON.stringify({ keys: [{ ...secret, d: undefined }] })) },
      { jwks: await file('oct.json', JSON.stringify({ keys: [{ kty: 'oct', k: 'c2VjcmV0', kid: 'h' }] })) },
      { jwks: await file('hs-alg.json', JSON.stringify({ keys: [{ ...secret, d: undefined, kid: 'a', alg: 'HS256' }] })) },
      { jwks: await file('dup.json', JSON.stringify({ keys: [{ ...secret, d: undefined, kid: 'a' }, { ...secret, d: undefined, kid: 'a' }] })) },
    ];
    for (const overrides of bad) {
      const err = await createExternalTokenVerifier({ ...config, ...overrides }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err, JSON.stringify(overrides)).toBeInstanceOf(ConfigError);
    }
  });
});
