/**
 * Verifies the bearer tokens that requests carry: our own (from TokenIssuer, signed with our key) or
 * those of an external issuer that the configuration trusts (auth.token), as distribution does.
 * Every failure is a TokenInvalidError whose `reason` is short and safe to log; no token reaches it.
 */
import { createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  calculateJwkThumbprint,
  decodeProtectedHeader,
  exportJWK,
  jwtVerify,
  type JWTPayload,
  type JWTVerifyOptions,
  type ProtectedHeaderParameters,
} from 'jose';
import { ASYMMETRIC_ALGORITHMS, ConfigError, type AuthConfig } from '../config/config.js';
import type { SigningKey } from './signing-key.js';
import type { ResourceScope } from './types.js';

/** A token that must not be honoured; `reason` says why, for logs. */
export class TokenInvalidError extends Error {
  override name = 'TokenInvalidError';
  constructor(readonly reason: string) {
    super(`invalid token: ${reason}`);
  }
}

export interface VerifiedToken {
  /** The `sub` claim; '' for an anonymous caller. */
  readonly subject: string;
  readonly access: ResourceScope[];
  /** The access key the token was issued for (our own tokens only). */
  readonly keyId?: string;
  /** Whether an external issuer signed the token. */
  readonly external: boolean;
  /** The `exp` claim, in milliseconds since the epoch. */
  readonly expiresAt: number;
}

export interface TokenVerifier {
  verify(token: string): Promise<VerifiedToken>;
}

/** How far the clocks of the issuer and this server may disagree, in seconds. */
export const CLOCK_TOLERANCE_S = 60;
/** The `typ` header of our access tokens. */
export const ACCESS_TOKEN_TYPE = 'JWT';
/** The `typ` header of our refresh tokens, which no access-token check accepts. */
export const REFRESH_TOKEN_TYPE = 'refresh+jwt';
/** Private claim that marks a refresh token (`token_use: 'refresh'`). */
export const TOKEN_USE_CLAIM = 'token_use';
/** Private claim naming the access key a token was issued for. */
export const KEY_ID_CLAIM = 'ocireg_key';

export interface OwnTokenVerifierOptions {
  readonly key: SigningKey;
  readonly issuer: string;
  readonly service: string;
  readonly now?: () => number;
}

/** Verifies the access tokens of our TokenIssuer. */
export function createOwnTokenVerifier(options: OwnTokenVerifierOptions): TokenVerifier {
  const { key, issuer, service } = options;
  const now = options.now ?? Date.now;
  return {
    async verify(token) {
      const payload = await verifyJwt(token, key.publicKey, {
        algorithms: [key.alg],
        issuer,
        audience: service,
        typ: ACCESS_TOKEN_TYPE,
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(now()),
        requiredClaims: ['sub', 'exp', 'nbf', 'iat', 'jti', 'access'],
      });
      if (payload[TOKEN_USE_CLAIM] !== undefined) throw new TokenInvalidError('not an access token');
      checkIssuedAt(payload, now());
      const keyId = payload[KEY_ID_CLAIM];
      if (keyId !== undefined && typeof keyId !== 'string') throw new TokenInvalidError(`malformed ${KEY_ID_CLAIM} claim`);
      return {
        subject: subjectOf(payload),
        access: accessOf(payload[ACCESS_CLAIM]),
        ...(keyId !== undefined ? { keyId } : {}),
        external: false,
        expiresAt: payload.exp! * 1000,
      };
    },
  };
}

/**
 * Verifies the tokens of an external issuer. The trusted keys are read once, here: the certificates of
 * `rootCertBundle` and the keys of the `jwks` file. A token names its key by an `x5c` chain that ends
 * at a bundle certificate, or by a `kid` that is a JWKS key's id or a bundle key's RFC 7638 thumbprint.
 */
export async function createExternalTokenVerifier(
  config: NonNullable<AuthConfig['token']>,
  now: () => number = Date.now,
): Promise<TokenVerifier> {
  const roots = config.rootCertBundle ? await readCertBundle(config.rootCertBundle) : [];
  const keysById = config.jwks ? await readJwks(config.jwks) : new Map<string, TrustedKey>();
  for (const cert of roots) {
    const thumbprint = await thumbprintOf(cert.publicKey);
    if (thumbprint !== undefined && !keysById.has(thumbprint)) keysById.set(thumbprint, { key: cert.publicKey });
  }
  const algorithms = config.signingAlgorithms.filter((a) => ASYMMETRIC_ALGORITHMS.includes(a));

  return {
    async verify(token) {
      const header = decodeHeader(token);
      const alg = header.alg;
      if (typeof alg !== 'string' || !algorithms.includes(alg)) throw new TokenInvalidError('algorithm not allowed');
      const at = now();
      let key: KeyObject;
      if (header.x5c !== undefined) {
        key = trustedLeafKey(header.x5c, roots, at);
      } else if (typeof header.kid === 'string') {
        const trusted = keysById.get(header.kid);
        if (!trusted) throw new TokenInvalidError('unknown key id');
        if (trusted.alg !== undefined && trusted.alg !== alg) throw new TokenInvalidError('algorithm does not match the key');
        key = trusted.key;
      } else {
        throw new TokenInvalidError('no key identified (x5c or kid)');
      }
      const payload = await verifyJwt(token, key, {
        algorithms: [alg],
        issuer: config.issuer,
        audience: config.service,
        clockTolerance: CLOCK_TOLERANCE_S,
        currentDate: new Date(at),
        requiredClaims: ['exp'],
      });
      return {
        subject: subjectOf(payload),
        access: payload[ACCESS_CLAIM] === undefined ? [] : accessOf(payload[ACCESS_CLAIM]),
        external: true,
        expiresAt: payload.exp! * 1000,
      };
    },
  };
}

const ACCESS_CLAIM = 'access';

/**
 * jwtVerify with every failure turned into a TokenInvalidError (jose also throws TypeError, for a key
 * that does not suit the algorithm).
 */
export async function verifyJwt(token: string, key: KeyObject, options: JWTVerifyOptions): Promise<JWTPayload> {
  try {
    return (await jwtVerify(token, key, options)).payload;
  } catch (err) {
    throw new TokenInvalidError(reasonOf(err));
  }
}

function reasonOf(err: unknown): string {
  const { code, claim } = err as { code?: string; claim?: string };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'expired';
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      return claim ? `${claim} claim rejected` : 'claims rejected';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return 'algorithm not allowed';
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return 'bad signature';
    case 'ERR_JWS_INVALID':
    case 'ERR_JWT_INVALID':
      return 'malformed';
    case 'ERR_JOSE_NOT_SUPPORTED':
      return 'unsupported';
    default:
      return err instanceof TypeError ? 'key does not suit the algorithm' : 'unverifiable';
  }
}

function decodeHeader(token: string): ProtectedHeaderParameters {
  if (token.split('.').length !== 3) throw new TokenInvalidError('malformed');
  try {
    return decodeProtectedHeader(token);
  } catch {
    throw new TokenInvalidError('malformed');
  }
}

/** `iat` may not lie in the future beyond the clock tolerance (jose checks only its type). */
function checkIssuedAt(payload: JWTPayload, nowMs: number): void {
  if (typeof payload.iat !== 'number' || payload.iat > nowMs / 1000 + CLOCK_TOLERANCE_S) {
    throw new TokenInvalidError('iat claim rejected');
  }
}

function subjectOf(payload: JWTPayload): string {
  if (payload.sub === undefined) return '';
  if (typeof payload.sub !== 'string') throw new TokenInvalidError('malformed sub claim');
  return payload.sub;
}

/** The `access` claim as ResourceScopes; anything but an array of {type, name, actions[]} is refused. */
export function accessOf(value: unknown): ResourceScope[] {
  if (!Array.isArray(value)) throw new TokenInvalidError('malformed access claim');
  return value.map((entry: unknown) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new TokenInvalidError('malformed access claim');
    const { type, name, actions } = entry as Record<string, unknown>;
    if (
      typeof type !== 'string' ||
      typeof name !== 'string' ||
      !Array.isArray(actions) ||
      !actions.every((a): a is string => typeof a === 'string')
    ) {
      throw new TokenInvalidError('malformed access claim');
    }
    return { type, name, actions: [...actions] };
  });
}

// --- trusted keys of an external issuer ------------------------------------------------------------

interface TrustedKey {
  readonly key: KeyObject;
  /** The JWK's `alg`, when the JWKS names one: then only that algorithm may use the key. */
  readonly alg?: string;
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

async function readCertBundle(path: string): Promise<X509Certificate[]> {
  const text = await readConfigFile('auth.token.rootcertbundle', path);
  const blocks = text.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new ConfigError(`auth.token.rootcertbundle: ${path} holds no PEM certificate`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch {
      throw new ConfigError(`auth.token.rootcertbundle: certificate ${i + 1} in ${path} cannot be parsed`);
    }
  });
}

async function readJwks(path: string): Promise<Map<string, TrustedKey>> {
  const text = await readConfigFile('auth.token.jwks', path);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new ConfigError(`auth.token.jwks: ${path} is not JSON`);
  }
  const keys = (doc as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) throw new ConfigError(`auth.token.jwks: ${path} is not a JSON Web Key Set (no "keys" array)`);
  const byId = new Map<string, TrustedKey>();
  keys.forEach((jwk: unknown, i) => {
    const problem = (what: string) => new ConfigError(`auth.token.jwks: key ${i + 1} in ${path} ${what}`);
    if (typeof jwk !== 'object' || jwk === null) throw problem('is not an object');
    const { kid, alg, use } = jwk as { kid?: unknown; alg?: unknown; use?: unknown };
    if (use !== undefined && use !== 'sig') return; // an encryption key signs nothing
    if (typeof kid !== 'string' || kid === '') throw problem('has no kid');
    if (alg !== undefined && (typeof alg !== 'string' || !ASYMMETRIC_ALGORITHMS.includes(alg))) {
      throw problem('has an alg that is not a public-key signature algorithm');
    }
    if (byId.has(kid)) throw problem(`repeats the kid ${JSON.stringify(kid)}`);
    let key: KeyObject;
    try {
      key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
    } catch {
      throw problem('is not a public key');
    }
    byId.set(kid, { key, ...(alg !== undefined ? { alg } : {}) });
  });
  return byId;
}

async function readConfigFile(configKey: string, path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${configKey}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? 'unknown error'}`);
  }
}

async function thumbprintOf(key: KeyObject): Promise<string | undefined> {
  try {
    return await calculateJwkThumbprint(await exportJWK(key), 'sha256');
  } catch {
    return undefined; // a key type JWK cannot express: reachable by x5c only
  }
}

/**
 * The leaf's public key, once the `x5c` chain (leaf first, base64 DER) proves to end at a bundle
 * certificate: each certificate issued and signed by the next, intermediates marked as CAs, all within
 * their validity; the last one either is a bundle certificate or is issued and signed by one.
 */
function trustedLeafKey(x5c: unknown, roots: readonly X509Certificate[], nowMs: number): KeyObject {
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > 10) throw new TokenInvalidError('malformed x5c');
  const chain = x5c.map((der: unknown) => {
    if (typeof der !== 'string') throw new TokenInvalidError('malformed x5c');
    try {
      return new X509Certificate(Buffer.from(der, 'base64'));
    } catch {
      throw new TokenInvalidError('malformed x5c');
    }
  });
  for (const cert of chain) {
    if (!withinValidity(cert, nowMs)) throw new TokenInvalidError('certificate outside its validity');
  }
  for (let i = 0; i + 1 < chain.length; i++) {
    const cert = chain[i]!;
    const issuer = chain[i + 1]!;
    if (!issuer.ca || !cert.checkIssued(issuer) || !cert.verify(issuer.publicKey)) {
      throw new TokenInvalidError('broken certificate chain');
    }
  }
  const last = chain[chain.length - 1]!;
  const anchored = roots.some(
    (root) =>
      withinValidity(root, nowMs) &&
      (root.raw.equals(last.raw) || (last.checkIssued(root) && last.verify(root.publicKey))),
  );
  if (!anchored) throw new TokenInvalidError('untrusted certificate chain');
  return chain[0]!.publicKey;
}

function withinValidity(cert: X509Certificate, nowMs: number): boolean {
  return Date.parse(cert.validFrom) <= nowMs && nowMs <= Date.parse(cert.validTo);
}
