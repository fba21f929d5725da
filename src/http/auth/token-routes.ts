/**
 * The built-in token server (Docker token authentication): GET /auth/token with Basic
 * credentials or none, POST /auth/token in OAuth2's form (password and refresh_token grants),
 * and the signing key as a JWKS at /auth/jwks.json. With ECR on, user `AWS` signs in with a
 * GetAuthorizationToken password; such a login gets no refresh token (it ends with its password).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ECR_TOKEN_KEY_PREFIX, parseBasic, type Authentication } from '../../auth/authenticator.js';
import { parseScopes, ScopeError } from '../../auth/scope.js';
import type { Auth } from '../../auth/setup.js';
import { ANONYMOUS, type Identity, type ResourceScope } from '../../auth/types.js';
import type { TokenIssuer } from '../../auth/token-issuer.js';
import { RegistryError } from '../../oci/errors.js';
import { sendError } from '../errors.js';
import { quote, refuseLogin } from './guard.js';
import { queryParam, queryParams, readBody } from '../request.js';

const PUBLIC = { need: { kind: 'public' } } as const;
const FORM_LIMIT = 64 * 1024;

type TokenServer = NonNullable<Auth['tokenServer']>;

export async function tokenRoutes(app: FastifyInstance, auth: Auth & { tokenServer: TokenServer }): Promise<void> {
  const server = auth.tokenServer;

  app.get('/auth/jwks.json', { config: PUBLIC }, async (_request, reply) => {
    return reply.header('Cache-Control', 'public, max-age=300').send(server.key.jwks());
  });

  app.get('/auth/token', { config: PUBLIC }, async (request, reply) => {
    checkService(queryParam(request, 'service'), server.service);
    const scopes = scopesOf(queryParams(request, 'scope'));
    const header = request.headers.authorization;
    let identity: Identity = ANONYMOUS;
    // No header, or an empty user and password (containers/image without credentials): anonymous.
    if (header !== undefined && header !== '' && !/^basic\s+Og==$/i.test(header)) {
      const credentials = /^basic /i.test(header) ? parseBasic(header.slice(6).trim()) : undefined;
      if (!credentials) return refuseTokenLogin(request, reply, auth, { ok: false, reason: 'invalid', detail: 'only Basic credentials are taken here' });
      const result = await auth.authenticator.checkPassword(credentials, request.ip);
      if (!result.ok) return refuseTokenLogin(request, reply, auth, result, credentials.user);
      identity = result.identity;
      const account = queryParam(request, 'account');
      if (account !== undefined && account !== '' && account !== credentials.user) {
        throw new RegistryError('UNSUPPORTED', 'account does not match the signed-in user', { status: 400 });
      }
    }
    const offline = queryParam(request, 'offline_token') === 'true' && identity.kind === 'user';
    return reply.send(await tokenAnswer(auth, server.issuer, identity, scopes, queryParam(request, 'client_id'), offline, true));
  });

  app.post('/auth/token', { config: PUBLIC }, async (request, reply) => {
    const form = await readForm(request);
    checkService(form.get('service') ?? undefined, server.service);
    const scopes = scopesOf(form.getAll('scope'));
    const clientId = form.get('client_id') ?? undefined;
    const grant = form.get('grant_type');
    let identity: Identity;
    let offline = false;
    if (grant === 'password') {
      const user = form.get('username') ?? '';
      const result = await auth.authenticator.checkPassword({ user, password: form.get('password') ?? '' }, request.ip);
      if (!result.ok) return refuseTokenLogin(request, reply, auth, result, user);
      identity = result.identity;
      offline = form.get('access_type') === 'offline';
    } else if (grant === 'refresh_token') {
      const refreshed = await refreshIdentity(auth, server.issuer, form.get('refresh_token') ?? '');
      if (!refreshed) {
        request.log.info({ grant }, 'refresh token refused');
        return sendError(reply, 401, 'UNAUTHORIZED', 'the refresh token is invalid, expired or revoked');
      }
      identity = refreshed;
    } else {
      throw new RegistryError('UNSUPPORTED', 'grant_type must be password or refresh_token', { status: 400 });
    }
    return reply.send(await tokenAnswer(auth, server.issuer, identity, scopes, clientId, offline, false));
  });
}

async function tokenAnswer(
  auth: Auth,
  issuer: TokenIssuer,
  identity: Identity,
  scopes: ResourceScope[],
  clientId: string | undefined,
  offline: boolean,
  legacy: boolean,
): Promise<Record<string, unknown>> {
  const subject = identity.kind === 'user' ? identity.name : '';
  const ecrLogin = identity.kind === 'user' && identity.via === 'ecr';
  const rawKeyId = identity.kind === 'user' ? identity.keyId : undefined;
  // An ECR key pair is named apart from access keys, so that the token is checked against the right one.
  const keyId = rawKeyId !== undefined && ecrLogin ? `${ECR_TOKEN_KEY_PREFIX}${rawKeyId}` : rawKeyId;
  const access = auth.authorizer.grant(identity, scopes);
  const issued = await issuer.issueAccessToken({
    subject,
    access,
    ...(clientId ? { clientId } : {}),
    ...(keyId !== undefined ? { keyId } : {}),
  });
  const answer: Record<string, unknown> = {
    ...(legacy ? { token: issued.token } : {}),
    access_token: issued.token,
    expires_in: issued.expiresIn,
    issued_at: issued.issuedAt,
  };
  if (!legacy) answer.scope = access.map((s) => `${s.type}:${s.name}:${s.actions.join(',')}`).join(' ');
  // An ECR login lasts as long as its password (12 hours): a refresh token would outlive it.
  if (offline && !ecrLogin) {
    // Signed in with a password: the token carries its fingerprint, so a new password ends it.
    const stamp = keyId === undefined ? auth.users?.credentialStamp(subject) : undefined;
    const refresh = await issuer.issueRefreshToken({
      subject,
      ...(clientId ? { clientId } : {}),
      ...(keyId !== undefined ? { keyId } : {}),
      ...(stamp !== undefined ? { stamp } : {}),
    });
    answer.refresh_token = refresh.token;
  }
  return answer;
}

/** The identity a refresh token stands for, if its user (and access key) still exist. */
async function refreshIdentity(auth: Auth, issuer: TokenIssuer, token: string): Promise<Identity | undefined> {
  let claims;
  try {
    claims = await issuer.verifyRefreshToken(token);
  } catch {
    return undefined;
  }
  if (claims.keyId?.startsWith(ECR_TOKEN_KEY_PREFIX)) return undefined; // never issued: ECR logins get no refresh token
  if (!auth.users?.has(claims.subject)) return undefined;
  if (claims.keyId === undefined) {
    if (claims.stamp !== auth.users.credentialStamp(claims.subject)) return undefined; // the password changed since
    return { kind: 'user', name: claims.subject, via: 'token' };
  }
  const key = await auth.keys.active(claims.keyId);
  if (!key || key.user !== claims.subject) return undefined;
  return { kind: 'user', name: claims.subject, via: 'key', keyId: claims.keyId, keyScopes: key.scopes };
}

/** Credentials refused at the token endpoint: a Basic challenge (this endpoint takes only Basic). */
function refuseTokenLogin(
  request: FastifyRequest,
  reply: FastifyReply,
  auth: Auth,
  result: Exclude<Authentication, { ok: true }>,
  user?: string,
): FastifyReply {
  const realm = auth.challenge.scheme === 'basic' ? auth.challenge.realm : 'ocireg';
  return refuseLogin(request, reply, result, user?.slice(0, 100), `Basic realm=${quote(realm)}`, 'wrong user name or password');
}

function checkService(given: string | undefined, service: string): void {
  if (given !== undefined && given !== '' && given !== service) {
    throw new RegistryError('UNSUPPORTED', `this token server serves ${JSON.stringify(service)}`, { status: 400, detail: { service: given } });
  }
}

function scopesOf(values: readonly string[]): ResourceScope[] {
  try {
    return values.flatMap((v) => (v.trim() === '' ? [] : parseScopes(v)));
  } catch (err) {
    if (err instanceof ScopeError) throw new RegistryError('UNSUPPORTED', err.message, { status: 400 });
    throw err;
  }
}

async function readForm(request: FastifyRequest): Promise<URLSearchParams> {
  const type = String(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') {
    throw new RegistryError('UNSUPPORTED', 'expected an application/x-www-form-urlencoded body', { status: 400 });
  }
  const body = await readBody(request, FORM_LIMIT, () => new RegistryError('SIZE_INVALID', 'the form is too large', { status: 413 }));
  return new URLSearchParams(body.toString('utf8'));
}
