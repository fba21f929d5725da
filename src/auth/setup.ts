/**
 * Builds the auth room from the configuration: users (htpasswd), access keys, ECR's key pairs
 * (SigV4 and the `AWS` login), the login throttle, token issuing and verifying, and the access
 * rules. Without an `auth` section and without `ecr` there is nothing to build: every request is
 * allowed. With `ecr` on, /v2/ needs credentials like the ECR API does.
 */
import type { AuthConfig, Config, EcrConfig } from '../config/config.js';
import type { Index } from '../index/contract.js';
import { AccessKeys } from './access-keys.js';
import { compileAccessRules } from './access-rules.js';
import { Authenticator } from './authenticator.js';
import { Authorizer } from './authorizer.js';
import { EcrCredentials } from './ecr-credentials.js';
import { HtpasswdUsers } from './htpasswd.js';
import { LoginThrottle } from './login-throttle.js';
import { UiSessions } from './ui-sessions.js';
import { SigV4Verifier } from './sigv4.js';
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
  /** ECR's Basic challenge: `Basic realm="<proxyEndpoint>/",service="ecr.amazonaws.com"`, at the request's base URL. */
  | { readonly scheme: 'ecr' }
  /** `realm` undefined: our own token endpoint, at the request's base URL. */
  | { readonly scheme: 'bearer'; readonly realm: string | undefined; readonly service: string };

export interface Auth {
  readonly authenticator: Authenticator;
  readonly authorizer: Authorizer;
  readonly challenge: Challenge;
  readonly users?: HtpasswdUsers;
  readonly keys: AccessKeys;
  /** The web UI's sign-in sessions: with htpasswd users only (the UI signs in with a password). */
  readonly sessions?: UiSessions;
  /** Failed logins per (address, user) and per address; its lock counts feed the metrics. */
  readonly throttle: LoginThrottle;
  /** The built-in token server, when enabled. */
  readonly tokenServer?: { readonly issuer: TokenIssuer; readonly key: SigningKey; readonly service: string };
  /** The ECR API's credentials, when `ecr` is on: the key pairs and the SigV4 verifier over them. */
  readonly ecr?: { readonly credentials: EcrCredentials; readonly sigv4: SigV4Verifier };
  close(): void;
}

export async function openAuth(config: Config, index: Index, log: AuthLog): Promise<Auth | undefined> {
  const auth: AuthConfig | undefined = config.auth;
  if (!auth && !config.ecr) return undefined;
  const policy = compileAccessRules(config.access);
  const ecr = config.ecr ? ecrAuth(config.ecr) : undefined;
  const users = auth?.htpasswd ? await HtpasswdUsers.load(auth.htpasswd.path, log) : undefined;
  const keys = new AccessKeys(index.accessKeys);
  let tokens: TokenVerifier | undefined;
  let tokenServer: Auth['tokenServer'];
  let challenge: Challenge;
  try {
    if (auth?.tokenServer) {
      const key = await loadSigningKey(auth.tokenServer.keyPath, { create: config.index.driver === 'sqlite' });
      const { issuer: iss, service, expirationMs, refreshExpirationMs } = auth.tokenServer;
      tokenServer = { issuer: new TokenIssuer({ key, issuer: iss, service, expirationMs, refreshExpirationMs }), key, service };
      tokens = createOwnTokenVerifier({ key, issuer: iss, service });
      challenge = { scheme: 'bearer', realm: undefined, service };
    } else if (auth?.token) {
      tokens = await createExternalTokenVerifier(auth.token);
      challenge = { scheme: 'bearer', realm: auth.token.realm, service: auth.token.service };
    } else if (ecr) {
      // Docker answers ECR's challenge with the `AWS` login; htpasswd users sign in the same way.
      challenge = { scheme: 'ecr' };
    } else {
      challenge = { scheme: 'basic', realm: auth!.htpasswd!.realm };
    }
  } catch (err) {
    users?.close();
    throw err;
  }
  users?.watch();
  const throttle = new LoginThrottle();
  const authenticator = new Authenticator({
    ...(users ? { users } : {}),
    keys,
    throttle,
    ...(tokens ? { tokens } : {}),
    ...(ecr ? { ecr: ecr.credentials } : {}),
  });
  return {
    authenticator,
    authorizer: new Authorizer(policy),
    challenge,
    ...(users ? { users, sessions: new UiSessions(config.http.secret) } : {}),
    keys,
    throttle,
    ...(tokenServer ? { tokenServer } : {}),
    ...(ecr ? { ecr } : {}),
    close: () => users?.close(),
  };
}

function ecrAuth(config: EcrConfig): NonNullable<Auth['ecr']> {
  const credentials = new EcrCredentials(config.credentials);
  return { credentials, sigv4: new SigV4Verifier({ region: config.region, service: 'ecr', credentials, requiredSignedHeaders: ['x-amz-target'] }) };
}
