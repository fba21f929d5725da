/**
 * Builds the auth room from the configuration: users (htpasswd), access keys, the login
 * throttle, token issuing and verifying, and the access rules. Without an `auth` section
 * there is nothing to build: every request is allowed.
 */
import type { AuthConfig, Config } from '../config/config.js';
import type { Db } from '../index/database.js';
import { AccessKeyIndex } from '../index/access-key-index.js';
import { AccessKeys } from './access-keys.js';
import { compileAccessRules } from './access-rules.js';
import { Authenticator } from './authenticator.js';
import { Authorizer } from './authorizer.js';
import { HtpasswdUsers } from './htpasswd.js';
import { LoginThrottle } from './login-throttle.js';
import { loadSigningKey, type SigningKey } from './signing-key.js';
import { TokenIssuer } from './token-issuer.js';
import { createExternalTokenVerifier, createOwnTokenVerifier, type TokenVerifier } from './token-verifier.js';

export interface AuthLog {
  info(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/** How a 401 tells the client to sign in. */
export type Challenge =
  | { readonly scheme: 'basic'; readonly realm: string }
  /** `realm` undefined: our own token endpoint, at the request's base URL. */
  | { readonly scheme: 'bearer'; readonly realm: string | undefined; readonly service: string };

export interface Auth {
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly challenge: Challenge;
  readonly users?: HtpasswdUsers;
  readonly keys: AccessKeys;
  /** The built-in token server, when enabled. */
  readonly tokenServer?: { readonly issuer: TokenIssuer; readonly key: SigningKey; readonly service: string };
  close(): void;
}

export async function openAuth(config: Config, db: Db, log: AuthLog): Promise<Auth | undefined> {
  const auth: AuthConfig | undefined = config.auth;
  if (!auth) return undefined;
  const policy = compileAccessRules(config.access);
  const users = auth.htpasswd ? await HtpasswdUsers.load(auth.htpasswd.path, log) : undefined;
  const keys = new AccessKeys(new AccessKeyIndex(db));
  let tokens: TokenVerifier | undefined;
  let tokenServer: Auth['tokenServer'];
  let challenge: Challenge;
  try {
    if (auth.tokenServer) {
      const key = await loadSigningKey(auth.tokenServer.keyPath);
      const { issuer: iss, service, expirationMs, refreshExpirationMs } = auth.tokenServer;
      tokenServer = { issuer: new TokenIssuer({ key, issuer: iss, service, expirationMs, refreshExpirationMs }), key, service };
      tokens = createOwnTokenVerifier({ key, issuer: iss, service });
      challenge = { scheme: 'bearer', realm: undefined, service };
    } else if (auth.token) {
      tokens = await createExternalTokenVerifier(auth.token);
      challenge = { scheme: 'bearer', realm: auth.token.realm, service: auth.token.service };
    } else {
      challenge = { scheme: 'basic', realm: auth.htpasswd!.realm };
    }
  } catch (err) {
    users?.close();
    throw err;
  }
  users?.watch();
  const authenticator = new Authenticator({ ...(users ? { users } : {}), keys, throttle: new LoginThrottle(), ...(tokens ? { tokens } : {}) });
  return {
    authenticator,
    authorizer: new Authorizer(policy),
    challenge,
    ...(users ? { users } : {}),
    keys,
    ...(tokenServer ? { tokenServer } : {}),
    close: () => users?.close(),
  };
}
