/**
 * Turns the credentials a request carries into an Identity: Basic (a password from htpasswd, an
 * access key used as its user's password, or, as user `AWS`, the password ECR's
 * GetAuthorizationToken gave) or Bearer (a token of ours or of a trusted issuer).
 * Failed logins are counted per (client address, user); past the limit the pair is refused
 * without checking the password. Nothing here knows HTTP beyond the header's text.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { AccessKeys } from './access-keys.js';
import { EcrCredentials } from './ecr-credentials.js';
import { PasswordCheckBusyError, type HtpasswdUsers } from './htpasswd.js';
import type { LoginThrottle } from './login-throttle.js';
import type { TokenVerifier, VerifiedToken } from './token-verifier.js';
import { ANONYMOUS, type Identity } from './types.js';

export type Authentication =
  | { readonly ok: true; readonly identity: Identity }
  /** `invalid`: wrong or malformed credentials; `throttled`: too many failures, retry after the given seconds. */
  | { readonly ok: false; readonly reason: 'invalid'; readonly detail: string }
  /** An ECR login password that was valid and has expired: sign in again (403 DENIED, as ECR). */
  | { readonly ok: false; readonly reason: 'expired'; readonly detail: string }
  | { readonly ok: false; readonly reason: 'throttled'; readonly retryAfterSeconds: number }
  /** Too many password checks waiting already: retry shortly (503). */
  | { readonly ok: false; readonly reason: 'busy'; readonly retryAfterSeconds: number };

/** Longest user name accepted (bytes); a longer one is refused before any other work. */
export const MAX_USER_BYTES = 256;
/** Different passwords being checked at once for one client address; past it, that address waits. */
export const MAX_CHECKS_PER_ADDRESS = 8;
/** The user name docker signs in with for ECR (`docker login -u AWS`). */
export const ECR_LOGIN_USER = 'AWS';
/**
 * How a token of ours issued to an ECR login names the key pair behind it (`ecr:<access key id>`),
 * apart from access keys: the token stops working when the key pair leaves the configuration.
 */
export const ECR_TOKEN_KEY_PREFIX = 'ecr:';

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

export interface AuthenticatorParts {
  users?: HtpasswdUsers;
  keys?: AccessKeys;
  throttle: LoginThrottle;
  tokens?: TokenVerifier;
  /** ECR's key pairs: user `AWS` signs in with a GetAuthorizationToken password. */
  ecr?: EcrCredentials;
}

export class Authenticator {
  /** Password checks in flight: per (address, user), the distinct passwords (as HMACs) with their counts. */
  readonly #inFlight = new Map<string, Map<string, number>>();
  readonly #perAddress = new Map<string, number>();
  readonly #attemptKey = randomBytes(32);
  /** Tokens whose signature and claims were checked, until they expire: a signature check costs more than a request. */
  readonly #verifiedTokens = new VerifiedTokens();

  constructor(private readonly parts: AuthenticatorParts) {}

  /** Whether Basic credentials can be checked at all (an htpasswd file, or ECR's logins). */
  get acceptsPasswords(): boolean {
    return this.parts.users !== undefined || this.parts.ecr !== undefined;
  }

  /** Reads an Authorization header; no header is the anonymous caller. */
  async authenticate(header: string | undefined, address: string): Promise<Authentication> {
    if (header === undefined || header === '') return { ok: true, identity: ANONYMOUS };
    const space = header.indexOf(' ');
    const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
    const value = space < 0 ? '' : header.slice(space + 1).trim();
    if (scheme === 'basic') {
      // An empty user and password is how containers/image (skopeo, podman) answers a Basic challenge without credentials.
      if (value === EMPTY_BASIC) return { ok: true, identity: ANONYMOUS };
      const credentials = parseBasic(value);
      if (!credentials) return invalid('malformed Basic credentials');
      return this.checkPassword(credentials, address);
    }
    if (scheme === 'bearer') return this.checkToken(value);
    return invalid('unsupported authorization scheme'); // the value may be a secret sent without a scheme: never logged
  }

  /** Checks a user name and a password (or an access key's secret), counting failures. */
  async checkPassword({ user, password }: Credentials, address: string): Promise<Authentication> {
    const { users, keys, throttle } = this.parts;
    if (user === ECR_LOGIN_USER && this.parts.ecr) return this.checkEcrLogin(this.parts.ecr, password, address);
    if (!users) return invalid('passwords are not accepted here');
    if (Buffer.byteLength(user) > MAX_USER_BYTES) return invalid('user name too long');
    // The common case first: a client sending the password that verified a moment ago.
    const locked = throttle.check(address, user);
    if (!locked.allowed) return { ok: false, reason: 'throttled', retryAfterSeconds: locked.retryAfterSeconds };
    if (users.recentlyVerified(user, password)) {
      throttle.succeeded(address, user);
      return { ok: true, identity: { kind: 'user', name: user, via: 'password' } };
    }
    const busyAddress = throttle.checkAddress(address);
    if (!busyAddress.allowed) return { ok: false, reason: 'throttled', retryAfterSeconds: busyAddress.retryAfterSeconds };
    const pairKey = `${address.length}:${address}|${user}`;
    const attempt = createHmac('sha256', this.#attemptKey).update(password).digest('base64');
    const flights = this.#inFlight.get(pairKey);
    const joining = flights?.has(attempt) ?? false;
    const gate = throttle.check(address, user, (flights?.size ?? 0) - (joining ? 1 : 0));
    if (!gate.allowed) return { ok: false, reason: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
    if (!joining && (this.#perAddress.get(address) ?? 0) >= MAX_CHECKS_PER_ADDRESS) {
      return { ok: false, reason: 'throttled', retryAfterSeconds: 1 };
    }
    let identity: Identity | undefined;
    this.#begin(pairKey, attempt, address, joining);
    try {
      const key = users.has(user) ? await keys?.verify(user, password) : undefined;
      if (key) {
        identity = { kind: 'user', name: user, via: 'key', keyId: key.id, keyScopes: key.scopes };
      } else if (await users.verify(user, password)) {
        identity = { kind: 'user', name: user, via: 'password' };
      }
    } catch (err) {
      if (err instanceof PasswordCheckBusyError) return { ok: false, reason: 'busy', retryAfterSeconds: 1 };
      throw err;
    } finally {
      this.#end(pairKey, attempt, address, joining);
    }
    if (!identity) {
      throttle.failed(address, user);
      return invalid('wrong user name or password');
    }
    throttle.succeeded(address, user);
    return { ok: true, identity };
  }

  /**
   * User `AWS` with a GetAuthorizationToken password: an HMAC, cheap to check. Failures count per
   * (address, the key id the password names): every ECR login is user `AWS`, so counting them under
   * that one name would let a few bad passwords lock every ECR user of a shared address out. An
   * expired password is not a guess (it was issued here): it is not counted, and answers `expired`.
   */
  private checkEcrLogin(ecr: EcrCredentials, password: string, address: string): Authentication {
    const { throttle } = this.parts;
    const keyId = EcrCredentials.loginKeyId(password);
    const pair = keyId === undefined ? ECR_LOGIN_USER : `${ECR_LOGIN_USER}/${keyId}`;
    const locked = throttle.check(address, pair);
    if (!locked.allowed) return { ok: false, reason: 'throttled', retryAfterSeconds: locked.retryAfterSeconds };
    const busyAddress = throttle.checkAddress(address);
    if (!busyAddress.allowed) return { ok: false, reason: 'throttled', retryAfterSeconds: busyAddress.retryAfterSeconds };
    const checked = ecr.checkLoginPassword(password);
    if (checked.ok) {
      throttle.succeeded(address, pair);
      const { user, accessKeyId } = checked.credential;
      return { ok: true, identity: { kind: 'user', name: user, via: 'ecr', keyId: accessKeyId } };
    }
    if (checked.reason === 'expired') return { ok: false, reason: 'expired', detail: 'the ECR authorization token has expired' };
    throttle.failed(address, pair);
    return invalid('wrong ECR authorization token');
  }

  #begin(pairKey: string, attempt: string, address: string, joining: boolean): void {
    let flights = this.#inFlight.get(pairKey);
    if (!flights) this.#inFlight.set(pairKey, (flights = new Map()));
    flights.set(attempt, (flights.get(attempt) ?? 0) + 1);
    if (!joining) this.#perAddress.set(address, (this.#perAddress.get(address) ?? 0) + 1);
  }

  #end(pairKey: string, attempt: string, address: string, joining: boolean): void {
    const flights = this.#inFlight.get(pairKey)!;
    const left = flights.get(attempt)! - 1;
    if (left > 0) flights.set(attempt, left);
    else flights.delete(attempt);
    if (flights.size === 0) this.#inFlight.delete(pairKey);
    if (joining) return;
    const perAddress = this.#perAddress.get(address)! - 1;
    if (perAddress > 0) this.#perAddress.set(address, perAddress);
    else this.#perAddress.delete(address);
  }

  private async checkToken(token: string): Promise<Authentication> {
    const { tokens } = this.parts;
    if (!tokens) return invalid('bearer tokens are not accepted here');
    const cacheKey = VerifiedTokens.keyOf(token);
    let verified = this.#verifiedTokens.get(cacheKey);
    if (!verified) {
      try {
        verified = await tokens.verify(token);
      } catch (err) {
        return invalid(`invalid token: ${(err as { reason?: string }).reason ?? (err as Error).message}`);
      }
      this.#verifiedTokens.add(cacheKey, verified);
    }
    const tokenAccess = verified.access;
    if (verified.subject === '') return { ok: true, identity: { kind: 'anonymous', tokenAccess } };
    // A token of ours issued to an ECR login lasts while its key pair is configured, for the same user.
    if (!verified.external && verified.keyId?.startsWith(ECR_TOKEN_KEY_PREFIX)) {
      const accessKeyId = verified.keyId.slice(ECR_TOKEN_KEY_PREFIX.length);
      const credential = this.parts.ecr?.find(accessKeyId);
      if (!credential || credential.user !== verified.subject) return invalid('the ECR key pair behind the token is no longer configured');
      return { ok: true, identity: { kind: 'user', name: verified.subject, via: 'token', keyId: accessKeyId, tokenAccess } };
    }
    // A token of ours stops working once its user is gone from the htpasswd file.
    if (!verified.external && this.parts.users && !this.parts.users.has(verified.subject)) {
      return invalid('the token\'s user no longer exists');
    }
    // A token of ours issued through an access key is bounded by the key, which may since have been revoked.
    if (verified.keyId !== undefined && !verified.external) {
      const key = await this.parts.keys?.active(verified.keyId);
      if (!key || key.user !== verified.subject) return invalid('the access key behind the token is revoked or expired');
      return {
        ok: true,
        identity: { kind: 'user', name: verified.subject, via: 'token', keyId: verified.keyId, keyScopes: key.scopes, tokenAccess },
      };
    }
    return { ok: true, identity: { kind: 'user', name: verified.subject, via: 'token', tokenAccess, external: verified.external } };
  }
}

/**
 * Verified tokens by a SHA-256 of their text, at most MAX_VERIFIED_TOKENS, each until its `exp`.
 * Only what the signature vouches for is kept; what can change (a revoked key, a removed user)
 * is checked on every request after it.
 */
class VerifiedTokens {
  readonly #tokens = new Map<string, VerifiedToken>();

  constructor(private readonly now: () => number = Date.now) {}

  /** The cache's key for a token: a digest, so that the map holds no token. */
  static keyOf(token: string): string {
    return createHash('sha256').update(token).digest('base64');
  }

  get(key: string): VerifiedToken | undefined {
    const found = this.#tokens.get(key);
    if (found && found.expiresAt <= this.now()) {
      this.#tokens.delete(key);
      return undefined;
    }
    return found;
  }

  add(key: string, verified: VerifiedToken): void {
    if (this.#tokens.size >= MAX_VERIFIED_TOKENS) this.#tokens.delete(this.#tokens.keys().next().value!);
    this.#tokens.set(key, verified);
  }
}

const MAX_VERIFIED_TOKENS = 10_000;

const EMPTY_BASIC = Buffer.from(':').toString('base64');

function invalid(detail: string): Authentication {
  return { ok: false, reason: 'invalid', detail };
}

/** `base64(user:password)`; the password may contain colons, the user may not. */
export function parseBasic(value: string): Credentials | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(value)) return undefined;
  const text = Buffer.from(value, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: text.slice(0, colon), password: text.slice(colon + 1) };
}
