/**
 * Sessions of the web UI. A user signs in once with their password (through the Authenticator,
 * with its throttle); the browser then holds only an HttpOnly, SameSite=Strict cookie with a
 * signed, short-lived token (HS256, jose) naming the user and a random CSRF value. The password
 * never reaches the browser's storage and no session is kept on the server, so any node that
 * shares the key (http.secret) accepts it. Unsafe requests must repeat the CSRF value in a header,
 * which a page of another origin cannot read or send without a preflight that is never granted.
 */
import { randomBytes, timingSafeEqual, createHash } from 'node:crypto';
import { SignJWT, jwtVerify } from 'jose';

export const SESSION_COOKIE = 'ocireg_session';
export const CSRF_HEADER = 'x-ocireg-csrf';
const AUDIENCE = 'ocireg-ui';

export interface UiSession {
  readonly user: string;
  readonly csrf: string;
  readonly expiresAt: number;
}

export class UiSessions {
  readonly #key: Uint8Array;

  constructor(
    /** http.secret when set (every node the same); else a random key of this process. */
    secret: string | undefined,
    readonly lifetimeMs = 8 * 60 * 60 * 1000,
    private readonly now: () => number = Date.now,
  ) {
    // A key of any length, stretched to 32 bytes; the purpose is part of it, so that http.secret
    // used elsewhere one day cannot sign a session.
    this.#key = secret === undefined ? randomBytes(32) : createHash('sha256').update(`ocireg-ui-session\0${secret}`).digest();
  }

  async issue(user: string): Promise<{ token: string; session: UiSession }> {
    const csrf = randomBytes(24).toString('base64url');
    const issuedAt = Math.floor(this.now() / 1000);
    const expiresAt = (issuedAt + Math.floor(this.lifetimeMs / 1000)) * 1000;
    const token = await new SignJWT({ csrf })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user)
      .setAudience(AUDIENCE)
      .setIssuedAt(issuedAt)
      .setExpirationTime(expiresAt / 1000)
      .sign(this.#key);
    return { token, session: { user, csrf, expiresAt } };
  }

  /** The session a cookie value names, or undefined when it is forged, altered or expired. */
  async verify(token: string): Promise<UiSession | undefined> {
    if (token.length > 4096) return undefined;
    try {
      const { payload } = await jwtVerify(token, this.#key, {
        algorithms: ['HS256'],
        audience: AUDIENCE,
        currentDate: new Date(this.now()),
      });
      if (typeof payload.sub !== 'string' || typeof payload.csrf !== 'string' || typeof payload.exp !== 'number') return undefined;
      return { user: payload.sub, csrf: payload.csrf, expiresAt: payload.exp * 1000 };
    } catch {
      return undefined;
    }
  }
}

/** Whether the CSRF value a request sent is the session's (in constant time). */
export function csrfMatches(session: UiSession, sent: string | undefined): boolean {
  if (sent === undefined) return false;
  const a = Buffer.from(session.csrf);
  const b = Buffer.from(sent);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The value of one cookie of a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
