import { createHash, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rejectionOf } from './support.js';
import { ConfigError } from '../../src/config/config.js';
import { loadSigningKey } from '../../src/auth/signing-key.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ocireg-signing-key-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function keyFile(pem: string, name = 'key.pem'): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, pem);
  return path;
}

/** RFC 7638 thumbprint computed here from the required members, without jose. */
function thumbprint(key: KeyObject): string {
  const jwk = (key.type === 'public' ? key : createPublicKey(key)).export({ format: 'jwk' }) as Record<string, string>;
  const required: Record<string, string[]> = { EC: ['crv', 'kty', 'x', 'y'], RSA: ['e', 'kty', 'n'], OKP: ['crv', 'kty', 'x'] };
  const members = required[jwk.kty!]!;
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

const configErrorOf = (promise: Promise<unknown>) => rejectionOf(promise, ConfigError);

describe('loadSigningKey: a missing file', () => {
  it('creates an EC P-256 key in PKCS#8 PEM with mode 0600, creating the folder', async () => {
    const path = join(dir, 'nested', 'deeper', 'token-key.pem');
    const key = await loadSigningKey(path);

    expect(key.alg).toBe('ES256');
    expect(key.privateKey.asymmetricKeyType).toBe('ec');
    expect(key.privateKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const text = await readFile(path, 'utf8');
    expect(text).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('reuses the created key on the next load', async () => {
    const path = join(dir, 'token-key.pem');
    const first = await loadSigningKey(path);
    const before = await readFile(path, 'utf8');
    const second = await loadSigningKey(path);

    expect(second.kid).toBe(first.kid);
    expect(await readFile(path, 'utf8')).toBe(before);
  });

  it('gives two loads racing on the same missing file the same key', async () => {
    const path = join(dir, 'token-key.pem');
    const keys = await Promise.all([loadSigningKey(path), loadSigningKey(path), loadSigningKey(path)]);

    expect(new Set(keys.map((k) => k.kid)).size).toBe(1);
    expect(thumbprint(createPublicKey(await readFile(path, 'utf8')))).toBe(keys[0]!.kid);
  });
});

describe('loadSigningKey: existing files', () => {
  const cases: Array<{ name: string; pem: () => { pem: string; key: KeyObject }; alg: string }> = [
    { name: 'EC P-256 in SEC1', alg: 'ES256', pem: () => ec('P-256', 'sec1') },
    { name: 'EC P-256 in PKCS#8', alg: 'ES256', pem: () => ec('P-256', 'pkcs8') },
    { name: 'EC P-384', alg: 'ES384', pem: () => ec('P-384', 'pkcs8') },
    { name: 'EC P-521 in SEC1', alg: 'ES512', pem: () => ec('P-521', 'sec1') },
    { name: 'RSA 2048 in PKCS#1', alg: 'RS256', pem: () => rsa(2048, 'pkcs1') },
    { name: 'RSA 3072 in PKCS#8', alg: 'RS256', pem: () => rsa(3072, 'pkcs8') },
    { name: 'Ed25519', alg: 'EdDSA', pem: () => ed25519() },
  ];
  for (const c of cases) {
    it(`reads ${c.name} and signs with ${c.alg}`, async () => {
      const { pem, key } = c.pem();
      const path = await keyFile(pem);
      const loaded = await loadSigningKey(path);

      expect(loaded.alg).toBe(c.alg);
      expect(loaded.kid).toBe(thumbprint(key));
      expect(await readFile(path, 'utf8')).toBe(pem);
    });
  }

  it('publishes the public key alone, with kid, alg and use, as a JWKS', async () => {
    const { pem, key } = ec('P-256', 'pkcs8');
    const loaded = await loadSigningKey(await keyFile(pem));
    const publicMembers = createPublicKey(key).export({ format: 'jwk' });

    expect(loaded.jwks()).toEqual({
      keys: [{ ...publicMembers, kid: thumbprint(key), alg: 'ES256', use: 'sig' }],
    });
    expect(loaded.publicJwk).not.toHaveProperty('d');
    expect(JSON.parse(JSON.stringify(loaded.jwks())).keys[0].kid).toBe(loaded.kid);
  });

  it('publishes RSA and Ed25519 public keys without their private members', async () => {
    for (const { pem } of [rsa(2048, 'pkcs1'), ed25519()]) {
      const loaded = await loadSigningKey(await keyFile(pem, `k${Math.random()}.pem`));
      const jwk = loaded.jwks().keys[0]!;
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(jwk).not.toHaveProperty(secret);
      expect(jwk.kid).toBe(loaded.kid);
    }
  });
});

describe('loadSigningKey: unusable files', () => {
  it('refuses a file that is not a key, naming the setting and the path but not the content', async () => {
    const content = 'this-is-secret-garbage-1234567890';
    const path = await keyFile(content);
    const err = await configErrorOf(loadSigningKey(path));

    expect(err.message).toContain('auth.tokenserver.key');
    expect(err.message).toContain(path);
    expect(err.message).not.toContain(content);
  });

  it('refuses a damaged PEM without quoting it', async () => {
    const { pem } = ec('P-256', 'pkcs8');
    const damaged = pem.replace(/[A-Za-z0-9]{20}/, 'AAAAAAAAAAAAAAAAAAAA');
    const err = await configErrorOf(loadSigningKey(await keyFile(damaged.slice(0, 120))));
    expect(err.message).not.toContain(damaged.slice(30, 60));
  });

  it('refuses a public key, a certificate-less empty file and an encrypted key', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const encrypted = privateKey.export({ type: 'pkcs8', format: 'pem', cipher: 'aes-256-cbc', passphrase: 'pw' }) as string;
    for (const text of [publicKey.export({ type: 'spki', format: 'pem' }) as string, '', encrypted]) {
      await configErrorOf(loadSigningKey(await keyFile(text, `k${Math.random()}.pem`)));
    }
  });

  it('refuses keys we do not sign with: secp256k1, RSA under 2048 bits, Ed448', async () => {
    const pems = [
      generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).privateKey,
      generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey,
      generateKeyPairSync('ed448').privateKey,
    ].map((k) => k.export({ type: 'pkcs8', format: 'pem' }) as string);
    for (const pem of pems) {
      const path = await keyFile(pem, `k${Math.random()}.pem`);
      const err = await configErrorOf(loadSigningKey(path));
      expect(err.message).toContain('not supported');
      expect(err.message).toContain(path);
    }
  });

  it('refuses a path that cannot be read as a file', async () => {
    const path = join(dir, 'a-directory');
    await mkdir(path);
    const err = await configErrorOf(loadSigningKey(path));
    expect(err.message).toContain('auth.tokenserver.key');
    expect(err.message).toContain(path);
  });
});

function ec(curve: string, type: 'sec1' | 'pkcs8'): { pem: string; key: KeyObject } {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: curve });
  return { pem: privateKey.export({ type, format: 'pem' }) as string, key: privateKey };
}

function rsa(bits: number, type: 'pkcs1' | 'pkcs8'): { pem: string; key: KeyObject } {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return { pem: privateKey.export({ type, format: 'pem' }) as string, key: privateKey };
}

function ed25519(): { pem: string; key: KeyObject } {
  const { privateKey } = generateKeyPairSync('ed25519');
  return { pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, key: privateKey };
}
