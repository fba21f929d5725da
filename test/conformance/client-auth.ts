// How the conformance suite's requests authenticate, as a registry client would: nothing
// (no credentials given), Basic credentials on every request, or Docker token authentication
// (on a 401 with a Bearer challenge, GET a token from the realm with the challenge's service and
// scope and Basic credentials, cache it per scope, and retry once with `Authorization: Bearer`).
// Black-box: nothing here imports from src/.
import { inject } from 'vitest';

/** `none`: no credentials; `basic`: Basic on every request; `token`: the token dance; `auto`: Basic or Bearer, as the registry's challenge says. */
export type AuthMode = 'none' | 'basic' | 'token' | 'auto';

const TOKEN_MS = 15_000;

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate value such as `Bearer realm="...",service="...",scope="..."` (one challenge). */
export function parseChallenge(value: string | null): Challenge | undefined {
  if (!value) return undefined;
  const m = /^\s*([A-Za-z]+)\s*(.*)$/.exec(value);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g;
  for (let p = re.exec(m[2]!); p !== null; p = re.exec(m[2]!)) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
  }
  return { scheme: m[1]!.toLowerCase(), params };
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Tokens by scope (the challenge's `scope`, or '' for none), and the scope last asked for each kind of request. */
const tokens = new Map<string, CachedToken>();
const scopeOfRequest = new Map<string, string>();
/** In `auto` mode, once a registry has answered with a Basic challenge. */
let basicSeen = false;

function settings(): { mode: AuthMode; user: string; password: string } {
  return { mode: inject('conformanceAuth'), user: inject('conformanceUser'), password: inject('conformancePassword') };
}

export function authMode(): AuthMode {
  return inject('conformanceAuth');
}

function basicValue(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/**
 * A key for the kind of request (repository and whether it reads, writes or deletes), so that a
 * token obtained after one challenge is sent up front with the next request of the same kind.
 */
function requestKind(method: string, url: string): string {
  const path = new URL(url).pathname;
  const m = /^\/v2\/(.+?)\/(?:manifests|blobs|tags|referrers)\//.exec(path);
  const what = m ? m[1]! : path === '/v2/' || path === '/v2' ? '' : path;
  const verb = method === 'GET' || method === 'HEAD' ? 'read' : method === 'DELETE' ? 'delete' : 'write';
  // A mount names a second repository.
  const from = new URL(url).searchParams.get('from') ?? '';
  return `${verb} ${what} ${from}`;
}

/** The Authorization header to send up front for this request, if any. */
export function authorizationFor(method: string, url: string): string | undefined {
  const { mode, user, password } = settings();
  if (mode === 'none') return undefined;
  if (mode === 'basic' || (mode === 'auto' && basicSeen)) return basicValue(user, password);
  const scope = scopeOfRequest.get(requestKind(method, url));
  if (scope === undefined) return undefined;
  const cached = tokens.get(scope);
  if (!cached || cached.expiresAt <= Date.now()) return undefined;
  return `Bearer ${cached.token}`;
}

/**
 * After a 401: the Authorization header to retry with once, or undefined when the challenge
 * gives nothing to try (then the 401 stands). Fetches and caches a token for a Bearer challenge.
 */
export async function authorizationAfter(method: string, url: string, wwwAuthenticate: string | null, sent: string | undefined): Promise<string | undefined> {
  const { mode, user, password } = settings();
  if (mode === 'none') return undefined;
  const challenge = parseChallenge(wwwAuthenticate);
  if (!challenge) return undefined;
  if (challenge.scheme === 'basic') {
    if (mode === 'token' || sent?.startsWith('Basic ')) return undefined;
    basicSeen = true;
    return basicValue(user, password);
  }
  if (challenge.scheme !== 'bearer' || mode === 'basic') return undefined;
  // As docker does for a mount: the challenge names the target repository only, so the client
  // adds the pull scope of the repository it mounts from.
  const from = new URL(url).searchParams.get('from');
  const named = (challenge.params.scope ?? '').split(' ').filter(Boolean);
  if (from && new URL(url).searchParams.has('mount')) named.push(`repository:${from}:pull`);
  const scope = named.join(' ');
  const token = await fetchToken({ ...challenge.params, scope }, user, password);
  tokens.set(scope, token);
  scopeOfRequest.set(requestKind(method, url), scope);
  return `Bearer ${token.token}`;
}

/** GET <realm>?service=&scope=... with Basic credentials (none when no user is set). */
async function fetchToken(params: Record<string, string>, user: string, password: string): Promise<CachedToken> {
  const realm = params.realm;
  if (!realm) throw new Error(`a Bearer challenge without a realm: ${JSON.stringify(params)}`);
  const url = new URL(realm);
  if (params.service) url.searchParams.set('service', params.service);
  // Several scopes in one challenge are separated by spaces; each becomes a scope parameter.
  for (const scope of (params.scope ?? '').split(' ').filter(Boolean)) url.searchParams.append('scope', scope);
  if (user) url.searchParams.set('account', user);
  const res = await fetch(url, {
    headers: user ? { authorization: basicValue(user, password) } : {},
    signal: AbortSignal.timeout(TOKEN_MS),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url.href} answered ${res.status}: ${text.slice(0, 300)}`);
  const body = JSON.parse(text) as { token?: string; access_token?: string; expires_in?: number };
  const token = body.token ?? body.access_token;
  if (!token) throw new Error(`GET ${url.href}: no token in ${text.slice(0, 300)}`);
  // The spec's default lifetime is 60 s; renew a few seconds early.
  const lifetime = (body.expires_in ?? 60) * 1000;
  return { token, expiresAt: Date.now() + Math.max(0, lifetime - 5_000) };
}
