/**
 * The token server's signing key: one PEM private key file, created on first start when missing.
 * The JWS algorithm follows from the key (an EC key's curve, RSA, Ed25519); the key id is the
 * RFC 7638 thumbprint of the public key, so it is stable for as long as the key file is.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { ConfigError } from '../config/config.js';

export type SigningAlgorithm = 'ES256' | 'ES384' | 'ES512' | 'RS256' | 'EdDSA';

/** A public key as served in the JWKS: the key's own members plus kid, alg and use. */
export type PublicJwk = JWK & { readonly kid: string; readonly alg: SigningAlgorithm; readonly use: 'sig' };

export interface SigningKey {
  readonly alg: SigningAlgorithm;
  /** RFC 7638 thumbprint (base64url SHA-256) of the public key. */
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicJwk: PublicJwk;
  /** The JSON Web Key Set that lets others verify our tokens. */
  jwks(): { keys: PublicJwk[] };
}

const CONFIG_KEY = 'auth.tokenserver.key';
const MIN_RSA_BITS = 2048;
const CURVE_ALGORITHMS: Readonly<Record<string, SigningAlgorithm>> = {
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
};

/**
 * Reads the PEM private key at `path` (PKCS#8, SEC1 EC, PKCS#1 RSA or Ed25519), or, when there is no
 * file, creates one with a new EC P-256 key (PKCS#8, mode 0600) unless `create` is false: every node
 * of a cluster must sign with the same key, so there a missing file is an error rather than a new key
 * that only one node would know. Throws ConfigError for a key that cannot be read or used; the
 * message names the path, never the file's content.
 */
export async function loadSigningKey(path: string, options: { create?: boolean } = {}): Promise<SigningKey> {
  let pem = await readKeyFile(path);
  if (pem === undefined && options.create === false) {
    throw new ConfigError(
      `${CONFIG_KEY}: ${path} does not exist; with several nodes (index.driver: postgres) every node must sign tokens ` +
        'with the same key, so it is not created: make one (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256) ' +
        'and give every node that file',
    );
  }
  pem ??= await createKeyFile(path);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: pem, format: 'pem' });
  } catch {
    throw new ConfigError(
      `${CONFIG_KEY}: ${path} is not an unencrypted PEM private key (PKCS#8, SEC1 EC, PKCS#1 RSA or Ed25519)`,
    );
  }
  const alg = signingAlgorithmOf(privateKey);
  if (!alg) {
    throw new ConfigError(
      `${CONFIG_KEY}: the key in ${path} is not supported; use EC P-256, P-384 or P-521, RSA of at least ${MIN_RSA_BITS} bits, or Ed25519`,
    );
  }
  return signingKeyOf(privateKey, alg);
}

/** The JWS algorithm our tokens use with this private key, or undefined when we do not sign with such keys. */
export function signingAlgorithmOf(key: KeyObject): SigningAlgorithm | undefined {
  switch (key.asymmetricKeyType) {
    case 'ec':
      return CURVE_ALGORITHMS[key.asymmetricKeyDetails?.namedCurve ?? ''];
    case 'rsa':
      return (key.asymmetricKeyDetails?.modulusLength ?? 0) >= MIN_RSA_BITS ? 'RS256' : undefined;
    case 'ed25519':
      return 'EdDSA';
    default:
      return undefined;
  }
}

async function signingKeyOf(privateKey: KeyObject, alg: SigningAlgorithm): Promise<SigningKey> {
  const publicKey = createPublicKey(privateKey);
  const members = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(members, 'sha256');
  const publicJwk: PublicJwk = Object.freeze({ ...members, kid, alg, use: 'sig' });
  return Object.freeze({
    alg,
    kid,
    privateKey,
    publicKey,
    publicJwk,
    jwks: () => ({ keys: [publicJwk] }),
  });
}

/** The file's text, or undefined when it does not exist. */
async function readKeyFile(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw unreadable(path, err);
  }
}

/**
 * Writes a new key, created exclusively so that two processes starting together do not replace each
 * other's key; the one that loses the race reads the winner's file (waiting briefly while it is empty,
 * as the winner may not have written it yet).
 */
async function createKeyFile(path: string): Promise<string> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  try {
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
    return pem;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new ConfigError(`${CONFIG_KEY}: cannot create ${path}: ${errorCode(err)}`);
    }
  }
  for (let attempt = 0; ; attempt++) {
    const text = await readKeyFile(path);
    if ((text !== undefined && text.trim() !== '') || attempt >= 20) return text ?? '';
    await sleep(50);
  }
}

function unreadable(path: string, err: unknown): ConfigError {
  return new ConfigError(`${CONFIG_KEY}: cannot read ${path}: ${errorCode(err)}`);
}

/** The errno code of a filesystem error (EACCES, EISDIR...), which names no content. */
function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? 'unknown error';
}
