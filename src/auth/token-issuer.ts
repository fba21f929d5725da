/**
 * Issues the built-in token server's JWTs: access tokens in the shape of Docker's token authentication
 * (iss, sub, aud, exp, nbf, iat, jti, access), and refresh tokens for `offline_token=true`. Both are
 * signed with the same key; a refresh token carries its own `typ` header and a `token_use` claim and
 * has no `access` claim, so no access-token check can ever accept it.
 */
import { randomBytes } from 'node:crypto';
import { SignJWT, type JWTPayload } from 'jose';
import type { SigningKey } from './signing-key.js';
import {
  ACCESS_TOKEN_TYPE,
  CLOCK_TOLERANCE_S,
  KEY_ID_CLAIM,
  REFRESH_TOKEN_TYPE,
  TOKEN_USE_CLAIM,
  TokenInvalidError,
  verifyJwt,
} from './token-verifier.js';
import type { ResourceScope } from './types.js';

export interface TokenIssuerOptions {
  readonly key: SigningKey;
  readonly issuer: string;
  /** The audience of every token: the registry's service name. */
  readonly service: string;
  readonly expirationMs: number;
  readonly refreshExpirationMs: number;
  readonly now?: () => number;
}

export interface AccessTokenRequest {
  /** The user's name; '' for an anonymous caller. */
  readonly subject: string;
  /** The granted access: the intersection of what was asked and what is allowed. */
  readonly access: readonly ResourceScope[];
  readonly clientId?: string;
  /** The access key the caller signed in with, if any. */
  readonly keyId?: string;
}

export interface RefreshTokenRequest {
  readonly subject: string;
  readonly clientId?: string;
  readonly keyId?: string;
  /** A fingerprint of the credential signed in with (see HtpasswdUsers.credentialStamp): a changed password ends the token. */
  readonly stamp?: string;
}

export interface IssuedToken {
  readonly token: string;
  /** Lifetime in seconds (the token endpoint's `expires_in`). */
  readonly expiresIn: number;
  /** When the token was issued, RFC 3339 in UTC (the token endpoint's `issued_at`). */
  readonly issuedAt: string;
}

export interface RefreshTokenClaims {
  readonly subject: string;
  readonly clientId?: string;
  readonly keyId?: string;
  readonly stamp?: string;
}

const STAMP_CLAIM = 'ocireg_stamp';

const REFRESH_USE = 'refresh';

export class TokenIssuer {
  readonly #key: SigningKey;
  readonly #issuer: string;
  readonly #service: string;
  readonly #expiresIn: number;
  readonly #refreshExpiresIn: number;
  readonly #now: () => number;

  constructor(options: TokenIssuerOptions) {
    this.#key = options.key;
    this.#issuer = options.issuer;
    this.#service = options.service;
    this.#expiresIn = lifetimeSeconds(options.expirationMs);
    this.#refreshExpiresIn = lifetimeSeconds(options.refreshExpirationMs);
    this.#now = options.now ?? Date.now;
  }

  async issueAccessToken(request: AccessTokenRequest): Promise<IssuedToken> {
    const access = request.access.map((s) => ({ type: s.type, name: s.name, actions: [...s.actions] }));
    return this.#sign(ACCESS_TOKEN_TYPE, this.#expiresIn, request, { access });
  }

  async issueRefreshToken(request: RefreshTokenRequest): Promise<IssuedToken> {
    return this.#sign(REFRESH_TOKEN_TYPE, this.#refreshExpiresIn, request, {
      [TOKEN_USE_CLAIM]: REFRESH_USE,
      ...(request.stamp !== undefined ? { [STAMP_CLAIM]: request.stamp } : {}),
    });
  }

  /** The subject (and client and access key) a refresh token was issued to; throws TokenInvalidError. */
  async verifyRefreshToken(token: string): Promise<RefreshTokenClaims> {
    const payload = await verifyJwt(token, this.#key.publicKey, {
      algorithms: [this.#key.alg],
      issuer: this.#issuer,
      audience: this.#service,
      typ: REFRESH_TOKEN_TYPE,
      clockTolerance: CLOCK_TOLERANCE_S,
      currentDate: new Date(this.#now()),
      requiredClaims: ['sub', 'exp', 'iat', 'jti', TOKEN_USE_CLAIM],
    });
    if (payload[TOKEN_USE_CLAIM] !== REFRESH_USE || payload.access !== undefined) {
      throw new TokenInvalidError('not a refresh token');
    }
    const { sub, client_id: clientId, [KEY_ID_CLAIM]: keyId, [STAMP_CLAIM]: stamp } = payload;
    if (typeof sub !== 'string' || !optionalString(clientId) || !optionalString(keyId) || !optionalString(stamp)) {
      throw new TokenInvalidError('malformed refresh token claims');
    }
    return {
      subject: sub,
      ...(clientId !== undefined ? { clientId } : {}),
      ...(keyId !== undefined ? { keyId } : {}),
      ...(stamp !== undefined ? { stamp } : {}),
    };
  }

  async #sign(
    typ: string,
    lifetime: number,
    request: RefreshTokenRequest,
    claims: JWTPayload,
  ): Promise<IssuedToken> {
    const iat = Math.floor(this.#now() / 1000);
    const token = await new SignJWT({
      ...claims,
      ...(request.clientId !== undefined ? { client_id: request.clientId } : {}),
      ...(request.keyId !== undefined ? { [KEY_ID_CLAIM]: request.keyId } : {}),
    })
      .setProtectedHeader({ alg: this.#key.alg, typ, kid: this.#key.kid })
      .setIssuer(this.#issuer)
      .setSubject(request.subject)
      .setAudience(this.#service)
      .setIssuedAt(iat)
      .setNotBefore(iat)
      .setExpirationTime(iat + lifetime)
      .setJti(randomBytes(18).toString('base64url'))
      .sign(this.#key.privateKey);
    return { token, expiresIn: lifetime, issuedAt: rfc3339(iat) };
  }
}

/** Whole seconds, at least one. */
function lifetimeSeconds(ms: number): number {
  return Math.max(1, Math.ceil(ms / 1000));
}

function rfc3339(epochSeconds: number): string {
  return new Date(epochSeconds * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function optionalString(value: unknown): value is string | undefined {
  return value === undefined || typeof value === 'string';
}
