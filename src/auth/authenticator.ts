/**
 * Turns the credentials a request carries into an Identity: Basic (a password from htpasswd, or an
 * access key used as its user's password) or Bearer (a token of ours or of a trusted issuer).
 * Failed logins are counted per (client address, user); past the limit the pair is refused
 * without checking the password. Nothing here knows HTTP beyond the header's text.
 */
import type { AccessKeys } from './access-keys.js';
import type { HtpasswdUsers } from './htpasswd.js';
import type { LoginThrottle } from './login-throttle.js';
import type { TokenVerifier } from './token-verifier.js';
import { ANONYMOUS, type Identity } from './types.js';

export type Authentication =
  | { readonly ok: true; readonly identity: Identity }
  /** `invalid`: wrong or malformed credentials; `throttled`: too many failures, retry after the given seconds. */
  | { readonly ok: false; readonly reason: 'invalid'; readonly detail: string }
  | { readonly ok: false; readonly reason: 'throttled'; readonly retryAfterSeconds: number };

export interface Credentials {
  readonly user: string;
  readonly password: string;
}

export interface AuthenticatorParts {
  users?: HtpasswdUsers;
  keys?: AccessKeys;
  throttle: LoginThrottle;
  tokens?: TokenVerifier;
}

export class Authenticator {
  constructor(private readonly parts: AuthenticatorParts) {}

  /** Whether Basic credentials can be checked at all (an htpasswd file is configured). */
  get acceptsPasswords(): boolean {
    return this.parts.users !== undefined;
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
    return invalid(`unsupported authorization scheme ${JSON.stringify(scheme.slice(0, 20))}`);
  }

  /** Checks a user name and a password (or an access key's secret), counting failures. */
  async checkPassword({ user, password }: Credentials, address: string): Promise<Authentication> {
    const { users, keys, throttle } = this.parts;
    if (!users) return invalid('passwords are not accepted here');
    const gate = throttle.check(address, user);
    if (!gate.allowed) return { ok: false, reason: 'throttled', retryAfterSeconds: gate.retryAfterSeconds };
    let identity: Identity | undefined;
    const key = users.has(user) ? keys?.verify(user, password) : undefined;
    if (key) {
      identity = { kind: 'user', name: user, via: 'key', keyId: key.id, keyScopes: key.scopes };
    } else if (await users.verify(user, password)) {
      identity = { kind: 'user', name: user, via: 'password' };
    }
    if (!identity) {
      throttle.failed(address, user);
      return invalid('wrong user name or password');
    }
    throttle.succeeded(address, user);
    return { ok: true, identity };
  }

  private async checkToken(token: string): Promise<Authentication> {
    const { tokens } = this.parts;
    if (!tokens) return invalid('bearer tokens are not accepted here');
    let verified;
    try {
      verified = await tokens.verify(token);
    } catch (err) {
      return invalid(`invalid token: ${(err as { reason?: string }).reason ?? (err as Error).message}`);
    }
    const tokenAccess = verified.access;
    if (verified.subject === '') return { ok: true, identity: { kind: 'anonymous', tokenAccess } };
    // A token of ours issued through an access key is bounded by the key, which may since have been revoked.
    if (verified.keyId !== undefined && !verified.external) {
      const key = this.parts.keys?.active(verified.keyId);
      if (!key || key.user !== verified.subject) return invalid('the access key behind the token is revoked or expired');
      return {
        ok: true,
        identity: { kind: 'user', name: verified.subject, via: 'token', keyId: verified.keyId, keyScopes: key.scopes, tokenAccess },
      };
    }
    return { ok: true, identity: { kind: 'user', name: verified.subject, via: 'token', tokenAccess, external: verified.external } };
  }
}

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
