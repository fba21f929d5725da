/**
 * The one hook that decides whether a request may reach its handler. Every route declares
 * what it needs in its config (`config: { need }`), a Need or a function of the request; a
 * route that declares nothing is refused. The decision itself is src/auth/'s.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Authentication } from '../../auth/authenticator.js';
import type { Auth, Challenge } from '../../auth/setup.js';
import { challengeScope } from '../../auth/scope.js';
import { ANONYMOUS, type Identity, type Need } from '../../auth/types.js';
import { sendError } from '../errors.js';
import { CSRF_HEADER, SESSION_COOKIE, csrfMatches, readCookie, type UiSession } from '../../auth/ui-sessions.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** What the route needs; see src/auth/types.ts. Required on every route. */
    need?: Need | ((request: FastifyRequest) => Need);
    /**
     * A route of the web UI (or one it calls): the UI's session cookie is a credential here, a
     * write must come from the registry's own origin and, with a session, carry its CSRF value;
     * a refusal sends no challenge (a browser would open its own sign-in dialog).
     */
    session?: boolean;
  }
  interface FastifyRequest {
    /** Who is asking, once the guard has checked the credentials. */
    identity: Identity;
    /** The web UI session the request came with, when its cookie was the credential. */
    uiSession: UiSession | undefined;
  }
}

export function registerGuard(app: FastifyInstance, auth: Auth | undefined, publicUrl: string | undefined): void {
  // Set on every request by the hooks below (a decorator may not hold a shared object).
  app.decorateRequest('identity', null as never);
  app.decorateRequest('uiSession', undefined);
  if (!auth) {
    // No auth section: everyone may do everything, but a route must still declare its need.
    app.addHook('onRequest', (request, reply, done) => {
      request.identity = ANONYMOUS;
      if (request.is404) return done();
      if (request.routeOptions.config.need === undefined) return undeclared(request, reply);
      if (request.routeOptions.config.session && crossOrigin(request, publicUrl)) return refuseCrossOrigin(reply);
      done();
    });
    return;
  }
  app.addHook('onRequest', async (request, reply) => {
    request.identity = ANONYMOUS;
    if (request.is404) return;
    const declared = request.routeOptions.config.need;
    if (declared === undefined) return undeclared(request, reply);
    const need = typeof declared === 'function' ? declared(request) : declared;
    const session = request.routeOptions.config.session === true;
    if (session && crossOrigin(request, publicUrl)) return refuseCrossOrigin(reply);
    // Public, or verified by the surface serving it (SigV4 on the ECR API): no Authorization read here.
    if (need.kind === 'public' || need.kind === 'signed') {
      if (session) await readSession(auth, request);
      return;
    }

    const header = request.headers.authorization;
    if (session && header === undefined) {
      const signedIn = await readSession(auth, request);
      if (signedIn === 'bad-csrf') return sendError(reply, 403, 'DENIED', 'the request lacks the session\'s CSRF token (x-ocireg-csrf)');
      const decision = auth.authorizer.decide(request.identity, need);
      if (decision.allowed) return;
      if (request.identity.kind === 'user') return sendError(reply, 403, 'DENIED', 'requested access to the resource is denied', scopeDetail(need));
      return sendError(reply, 401, 'UNAUTHORIZED', 'sign in first', scopeDetail(need));
    }
    const result = await auth.authenticator.authenticate(header, request.ip);
    if (!result.ok) {
      const bearer = /^bearer /i.test(header ?? '');
      const challenge = challengeHeader(auth.challenge, request, publicUrl, need, bearer ? 'invalid_token' : undefined);
      return refuseLogin(request, reply, result, basicUser(header), challenge, bearer ? 'the token is invalid or expired' : 'authentication required');
    }
    request.identity = result.identity;
    const decision = auth.authorizer.decide(result.identity, need);
    if (decision.allowed) return;
    if (decision.reason === 'denied') {
      return sendError(reply, 403, 'DENIED', 'requested access to the resource is denied', scopeDetail(need));
    }
    const error = decision.reason === 'insufficient_scope' ? 'insufficient_scope' : undefined;
    reply.header('WWW-Authenticate', challengeHeader(auth.challenge, request, publicUrl, need, error));
    return sendError(reply, 401, 'UNAUTHORIZED', 'authentication required', scopeDetail(need));
  });
}

/**
 * Answers credentials that were not accepted: 503 while too many password checks wait, 429 for a
 * locked (address, user), 403 DENIED for an expired ECR login (as ECR answers it), else 401 with
 * the challenge. Logs the user name, never the credentials.
 */
export function refuseLogin(
  request: FastifyRequest,
  reply: FastifyReply,
  result: Exclude<Authentication, { ok: true }>,
  user: string | undefined,
  challenge: string,
  message: string,
): FastifyReply {
  request.server.metrics?.authFailure(result.reason);
  if (result.reason === 'busy') {
    reply.header('Retry-After', String(result.retryAfterSeconds));
    return sendError(reply, 503, 'UNAVAILABLE', 'too many logins are being checked; retry shortly');
  }
  if (result.reason === 'throttled') {
    request.log.warn({ audit: { action: 'login.failure', user, addr: request.ip, reason: 'throttled' }, retryAfter: result.retryAfterSeconds }, 'login refused: too many failures');
    reply.header('Retry-After', String(result.retryAfterSeconds));
    return sendError(reply, 429, 'TOOMANYREQUESTS', 'too many failed logins; retry later');
  }
  request.log.info({ user, reason: result.detail, audit: { action: 'login.failure', user, addr: request.ip, reason: result.reason } }, 'authentication failed');
  if (result.reason === 'expired') {
    return sendError(reply, 403, 'DENIED', 'Your authorization token has expired. Reauthenticate and try again.');
  }
  reply.header('WWW-Authenticate', challenge);
  return sendError(reply, 401, 'UNAUTHORIZED', message);
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Takes the UI session cookie as the caller's identity when it is valid and its user still exists.
 * An unsafe request must repeat the session's CSRF value in the x-ocireg-csrf header.
 */
async function readSession(auth: Auth, request: FastifyRequest): Promise<'none' | 'ok' | 'bad-csrf'> {
  const token = readCookie(request.headers.cookie, SESSION_COOKIE);
  if (token === undefined || !auth.sessions || !auth.users) return 'none';
  const session = await auth.sessions.verify(token);
  if (!session || !auth.users.has(session.user)) return 'none';
  if (!SAFE_METHODS.has(request.method)) {
    const sent = request.headers[CSRF_HEADER];
    if (!csrfMatches(session, typeof sent === 'string' ? sent : undefined)) return 'bad-csrf';
  }
  request.identity = { kind: 'user', name: session.user, via: 'password' };
  request.uiSession = session;
  return 'ok';
}

/**
 * Whether an unsafe request to a UI route comes from a page of another origin: browsers send
 * Origin with every such request, and a forged form or script elsewhere cannot hide it.
 */
function crossOrigin(request: FastifyRequest, publicUrl: string | undefined): boolean {
  if (SAFE_METHODS.has(request.method)) return false;
  const origin = request.headers.origin;
  if (origin === undefined) return false; // not a browser (curl, scripts): nothing to forge
  // Both through URL, which leaves out a scheme's default port (http://host:80 is http://host).
  try {
    return new URL(origin).origin !== new URL(publicUrl ?? `${request.protocol}://${request.host}`).origin;
  } catch {
    return true;
  }
}

function refuseCrossOrigin(reply: FastifyReply): FastifyReply {
  return sendError(reply, 403, 'DENIED', 'a write from a page of another origin is refused');
}

function undeclared(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  request.log.error({ url: request.routeOptions.url }, 'route declares no access need; refused');
  return sendError(reply, 403, 'DENIED', 'requested access to the resource is denied');
}

/**
 * The `WWW-Authenticate` value for a 401: Basic with the realm, ECR's Basic (its realm the
 * registry's base URL, as ECR's proxyEndpoint), or Bearer naming the scope the request needs.
 */
export function challengeHeader(
  challenge: Challenge,
  request: FastifyRequest,
  publicUrl: string | undefined,
  need: Need,
  error?: 'invalid_token' | 'insufficient_scope',
): string {
  if (challenge.scheme === 'basic') return `Basic realm=${quote(challenge.realm)}`;
  const base = publicUrl ?? `${request.protocol}://${request.host}`;
  if (challenge.scheme === 'ecr') return `Basic realm=${quote(`${base}/`)},service="ecr.amazonaws.com"`;
  const realm = challenge.realm ?? `${base}/auth/token`;
  let value = `Bearer realm=${quote(realm)},service=${quote(challenge.service)}`;
  const scope = challengeScope(need);
  if (scope !== undefined) value += `,scope=${quote(scope)}`;
  if (error) value += `,error=${quote(error)}`;
  return value;
}

export function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

function scopeDetail(need: Need): unknown {
  if (need.kind === 'repository') return [{ Type: 'repository', Name: need.name, Action: need.actions.join(',') }];
  if (need.kind === 'catalog') return [{ Type: 'registry', Name: 'catalog', Action: '*' }];
  return undefined;
}

/** The user name of a Basic header, for log lines (never the password). */
function basicUser(header: string | undefined): string | undefined {
  const m = /^basic\s+([A-Za-z0-9+/=]+)$/i.exec(header ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon > 0 ? text.slice(0, colon).slice(0, 100) : undefined;
}
