/**
 * Access keys (robot accounts): a secret that a client sends as its user's password, which signs it
 * in as that user limited to the key's scopes. The secret is shown once, when the key is made, and
 * is shaped `ocik_<id>_<43 characters>` so that it is recognisable (in a leaked log, by a secret
 * scanner); only its SHA-256 is stored. 32 random bytes need no slow hash: nobody can guess them.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AccessKeyIndex, AccessKeyRow } from '../index/contract.js';
import type { ScopeGrant } from './types.js';

export class AccessKeyError extends Error {
  override name = 'AccessKeyError';
}

export interface NewAccessKey {
  readonly user: string;
  readonly scopes: readonly ScopeGrant[];
  /** When the key stops working, in ms since the epoch; absent: never. */
  readonly expiresAt?: number;
  readonly description?: string;
}

/** A key as listings show it: no secret, not even its hash. Times in ms since the epoch. */
export interface AccessKeyInfo {
  readonly id: string;
  readonly user: string;
  /** The grants as written (`repository:app/*:pull,push`). */
  readonly scopes: readonly string[];
  readonly description: string | null;
  readonly createdAt: number;
  readonly expiresAt: number | null;
  readonly lastUsedAt: number | null;
  readonly revokedAt: number | null;
}

/** A usable key: found, not revoked, not expired. */
export interface ActiveAccessKey {
  readonly id: string;
  readonly user: string;
  readonly scopes: readonly ScopeGrant[];
}

export interface AccessKeysOptions {
  /** The clock (default Date.now); injectable for tests. */
  now?: () => number;
}

export const SECRET_PREFIX = 'ocik_';
/** `last_used_at` is written at most this often per key. */
export const TOUCH_INTERVAL_MS = 60_000;

const SECRET_SHAPE = /^ocik_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export class AccessKeys {
  readonly #now: () => number;
  /** id → when last_used_at was last written by this process. */
  readonly #touched = new Map<string, number>();

  constructor(
    private readonly index: AccessKeyIndex,
    options: AccessKeysOptions = {},
  ) {
    this.#now = options.now ?? Date.now;
  }

  /** Makes a key and returns its secret, which is stored nowhere: show it once. */
  async create(key: NewAccessKey): Promise<{ id: string; secret: string }> {
    if (key.user === '' || key.user.includes(':') || /[\x00-\x1f\x7f]/.test(key.user)) {
      throw new AccessKeyError(`user ${JSON.stringify(key.user)}: expected a non-empty name without ":" or control characters`);
    }
    if (key.scopes.length === 0) throw new AccessKeyError('an access key needs at least one scope');
    const now = this.#now();
    if (key.expiresAt !== undefined && !(Number.isSafeInteger(key.expiresAt) && key.expiresAt > now)) {
      throw new AccessKeyError('the expiry time must be in the future');
    }
    const id = randomBytes(8).toString('hex');
    const secret = `${SECRET_PREFIX}${id}_${randomBytes(32).toString('base64url')}`;
    await this.index.insert({
      id,
      user: key.user,
      secretHash: sha256(secret),
      scopes: JSON.stringify(key.scopes.map((g) => ({ type: g.type, pattern: g.pattern, actions: [...g.actions] }))),
      description: key.description ?? null,
      createdAt: now,
      expiresAt: key.expiresAt ?? null,
    });
    return { id, secret };
  }

  /**
   * The key that `password` is, when it is an active key of `user`; undefined otherwise (not a key's
   * shape, unknown id, wrong secret, another user's key, revoked, expired). Records the use, at most
   * once a minute per key.
   */
  async verify(user: string, password: string): Promise<{ id: string; scopes: readonly ScopeGrant[] } | undefined> {
    const shape = SECRET_SHAPE.exec(password);
    if (!shape) return undefined;
    const row = await this.index.byId(shape[1]!);
    if (!row) return undefined;
    const given = Buffer.from(sha256(password), 'hex');
    const stored = Buffer.from(row.secretHash, 'hex');
    if (given.length !== stored.length || !timingSafeEqual(given, stored)) return undefined;
    if (row.user !== user) return undefined;
    const now = this.#now();
    const key = this.#active(row, now);
    if (!key) return undefined;
    await this.#touch(row, now);
    return { id: key.id, scopes: key.scopes };
  }

  /** The key with this id when it is still usable (tokens issued through a key check it again). */
  async active(id: string): Promise<ActiveAccessKey | undefined> {
    const row = await this.index.byId(id);
    return row ? this.#active(row, this.#now()) : undefined;
  }

  /** Every key, oldest first, without secrets or hashes. */
  async list(): Promise<AccessKeyInfo[]> {
    return (await this.index.list()).map((row) => ({
      id: row.id,
      user: row.user,
      scopes: (parseScopes(row.scopes) ?? []).map(formatGrant),
      description: row.description,
      createdAt: row.createdAt,
      expiresAt: row.expiresAt,
      lastUsedAt: row.lastUsedAt,
      revokedAt: row.revokedAt,
    }));
  }

  /** Revokes the key; false when there is no key with this id. Revoking twice keeps the first time. */
  async revoke(id: string): Promise<boolean> {
    this.#touched.delete(id);
    return this.index.revoke(id, this.#now());
  }

  #active(row: AccessKeyRow, now: number): ActiveAccessKey | undefined {
    if (row.revokedAt !== null) return undefined;
    if (row.expiresAt !== null && row.expiresAt <= now) return undefined;
    const scopes = parseScopes(row.scopes);
    if (!scopes) return undefined; // an unreadable row grants nothing
    return { id: row.id, user: row.user, scopes };
  }

  async #touch(row: AccessKeyRow, now: number): Promise<void> {
    const last = Math.max(this.#touched.get(row.id) ?? -Infinity, row.lastUsedAt ?? -Infinity);
    if (now - last < TOUCH_INTERVAL_MS) return;
    this.#touched.set(row.id, now);
    await this.index.touch(row.id, now);
  }
}

function sha256(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** `repository:app/*:pull,push`, `registry:catalog:*`: a grant as parseGrant reads it. */
export function formatGrant(grant: ScopeGrant): string {
  return `${grant.type}:${grant.pattern}:${grant.actions.join(',')}`;
}

/** The stored JSON grants, or undefined when they are not an array of grants. */
function parseScopes(json: string): ScopeGrant[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  const grants: ScopeGrant[] = [];
  for (const g of value as unknown[]) {
    const { type, pattern, actions } = (g ?? {}) as Record<string, unknown>;
    if ((type !== 'repository' && type !== 'registry') || typeof pattern !== 'string') return undefined;
    if (!Array.isArray(actions) || !actions.every((a): a is string => typeof a === 'string')) return undefined;
    grants.push({ type, pattern, actions });
  }
  return grants;
}
