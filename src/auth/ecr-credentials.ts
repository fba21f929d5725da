/**
 * ECR's key pairs (`ecr.credentials`) and the two stateless secrets made from them: the password
 * GetAuthorizationToken gives for user `AWS`, and the signed token of a GetDownloadUrlForLayer URL.
 *
 * Both carry the access key id and an expiry, with an HMAC-SHA256 over them keyed by a key derived
 * from that credential's secret (a different derivation for each use, so that one can never stand
 * in for the other). Nothing is stored: every node with the same configuration accepts what any
 * node issued, and removing a credential (or changing its secret) ends everything made with it.
 *
 *   password: ecr1.<access key id>.<expiry, ms>.<mac, base64url>     (no ':', as docker needs)
 *   download: <access key id>.<expiry, ms>.<mac over id, expiry, repository, digest>
 *
 * Neither is ever logged; inputs are bounded in length before any work.
 */
import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import type { EcrCredential } from '../config/config.js';

export type { EcrCredential };

/** How long a login password works (ECR: 12 hours). */
export const LOGIN_PASSWORD_TTL_MS = 12 * 60 * 60 * 1000;
/** Longest password or download token looked at; anything longer is refused unread. */
export const MAX_TOKEN_LENGTH = 512;

const PASSWORD_PREFIX = 'ecr1';
const LOGIN_LABEL = 'ocireg ecr login password v1';
const DOWNLOAD_LABEL = 'ocireg ecr layer download v1';
const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;
/** Milliseconds since the epoch, as written: 1 to 15 digits, no leading zero. */
const EXPIRY = /^[1-9][0-9]{0,14}$/;
/** An HMAC-SHA256 in base64url without padding. */
const MAC = /^[A-Za-z0-9_-]{43}$/;

export type LoginCheck =
  | { readonly ok: true; readonly credential: EcrCredential; readonly expiresAt: number }
  | { readonly ok: false; readonly reason: 'expired' | 'invalid' };

interface DerivedKeys {
  readonly login: Buffer;
  readonly download: Buffer;
}

export class EcrCredentials {
  readonly #byId: ReadonlyMap<string, EcrCredential>;
  readonly #now: () => number;
  /** Keys derived per credential object (the configuration's are frozen and live as long as the app). */
  readonly #keys = new WeakMap<EcrCredential, DerivedKeys>();

  constructor(credentials: readonly EcrCredential[], options: { now?: () => number } = {}) {
    this.#byId = new Map(credentials.map((c) => [c.accessKeyId, c]));
    this.#now = options.now ?? Date.now;
  }

  find(accessKeyId: string): EcrCredential | undefined {
    return this.#byId.get(accessKeyId);
  }

  /** GetAuthorizationToken: a password for user `AWS`, valid 12 hours. It never contains ':'. */
  issueLoginPassword(credential: EcrCredential): { password: string; expiresAt: number } {
    const expiresAt = this.#now() + LOGIN_PASSWORD_TTL_MS;
    const mac = this.#mac(this.#keysOf(credential).login, [credential.accessKeyId, String(expiresAt)]);
    return { password: `${PASSWORD_PREFIX}.${credential.accessKeyId}.${expiresAt}.${mac}`, expiresAt };
  }

  /**
   * The password docker sends as user AWS. `expired` only for a password this configuration did
   * issue (its MAC verifies); anything else, including a removed credential's, is `invalid`.
   */
  checkLoginPassword(password: string): LoginCheck {
    if (password.length > MAX_TOKEN_LENGTH) return INVALID;
    const parts = password.split('.');
    if (parts.length !== 4 || parts[0] !== PASSWORD_PREFIX) return INVALID;
    const [, accessKeyId, expiry, mac] = parts as [string, string, string, string];
    const verified = this.#verify(accessKeyId, expiry, mac, 'login', []);
    if (!verified) return INVALID;
    if (verified.expiresAt <= this.#now()) return EXPIRED;
    return { ok: true, ...verified };
  }

  /**
   * The access key id a login password names (checked or not), for counting failures per key
   * rather than per `AWS`, the one user name every ECR login shares; undefined if it names none.
   */
  static loginKeyId(password: string): string | undefined {
    if (password.length > MAX_TOKEN_LENGTH) return undefined;
    const parts = password.split('.');
    return parts.length === 4 && parts[0] === PASSWORD_PREFIX && /^[A-Z0-9]{16,128}$/.test(parts[1]!) ? parts[1] : undefined;
  }

  /** A short-lived token for GetDownloadUrlForLayer's registry URL (a query value: URL-safe as it is). */
  signDownload(credential: EcrCredential, repo: string, digest: string, expiresAt: number): string {
    if (!Number.isSafeInteger(expiresAt) || !EXPIRY.test(String(expiresAt))) {
      throw new RangeError('expiresAt must be a positive integer of milliseconds since the epoch');
    }
    const mac = this.#mac(this.#keysOf(credential).download, [credential.accessKeyId, String(expiresAt), repo, digest]);
    return `${credential.accessKeyId}.${expiresAt}.${mac}`;
  }

  /** False when the token is malformed, made for another blob, expired, or its credential is gone. */
  verifyDownload(token: string, repo: string, digest: string): boolean {
    if (token.length > MAX_TOKEN_LENGTH) return false;
    const parts = token.split('.');
    if (parts.length !== 3) return false;
    const [accessKeyId, expiry, mac] = parts as [string, string, string];
    const verified = this.#verify(accessKeyId, expiry, mac, 'download', [repo, digest]);
    return verified !== undefined && verified.expiresAt > this.#now();
  }

  /** The credential and expiry when the parts are well formed and the MAC is right; undefined otherwise. */
  #verify(
    accessKeyId: string,
    expiry: string,
    mac: string,
    use: keyof DerivedKeys,
    extra: readonly string[],
  ): { credential: EcrCredential; expiresAt: number } | undefined {
    if (!ACCESS_KEY_ID.test(accessKeyId) || !EXPIRY.test(expiry) || !MAC.test(mac)) return undefined;
    const credential = this.#byId.get(accessKeyId);
    if (!credential) return undefined;
    const expected = Buffer.from(this.#mac(this.#keysOf(credential)[use], [accessKeyId, expiry, ...extra]));
    const given = Buffer.from(mac);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    return { credential, expiresAt: Number(expiry) };
  }

  #keysOf(credential: EcrCredential): DerivedKeys {
    let keys = this.#keys.get(credential);
    if (!keys) {
      const derive = (label: string) => Buffer.from(hkdfSync('sha256', credential.secretAccessKey, credential.accessKeyId, label, 32));
      keys = { login: derive(LOGIN_LABEL), download: derive(DOWNLOAD_LABEL) };
      this.#keys.set(credential, keys);
    }
    return keys;
  }

  /** HMAC-SHA256 over the fields, each length-prefixed so that no two field lists sign alike. */
  #mac(key: Buffer, fields: readonly string[]): string {
    const hmac = createHmac('sha256', key);
    for (const field of fields) hmac.update(`${Buffer.byteLength(field)}:`).update(field);
    return hmac.digest('base64url');
  }
}

const INVALID: LoginCheck = Object.freeze({ ok: false, reason: 'invalid' });
const EXPIRED: LoginCheck = Object.freeze({ ok: false, reason: 'expired' });
