/**
 * Remembers, for a short while, which (user, password, stored hash) triples bcrypt has already
 * accepted, so that a client sending Basic credentials on every request does not pay a bcrypt
 * comparison each time. Only a keyed digest is kept: HMAC-SHA256 under a random per-process key over
 * the three values, never the password. Because the stored hash is part of the digest, a password
 * changed in the htpasswd file misses the cache at once. Failures are never remembered.
 */
import { createHmac, randomBytes } from 'node:crypto';

export interface VerifiedCacheOptions {
  /** How long a verified triple is remembered (default 60 s). */
  ttlMs?: number;
  /** At most this many entries; the oldest are dropped first (default 10,000). */
  maxEntries?: number;
  /** The clock (default Date.now); injectable for tests. */
  now?: () => number;
}

export const VERIFIED_TTL_MS = 60_000;
export const VERIFIED_MAX_ENTRIES = 10_000;

export class VerifiedCache {
  readonly #key = randomBytes(32);
  /** digest → expiry time; a Map iterates in insertion order, which makes the oldest easy to drop. */
  readonly #entries = new Map<string, number>();
  readonly #ttlMs: number;
  readonly #maxEntries: number;
  readonly #now: () => number;
  /** Checks answered from memory, and checks that had to run bcrypt (for metrics). */
  readonly stats = { hits: 0, misses: 0 };

  constructor(options: VerifiedCacheOptions = {}) {
    this.#ttlMs = options.ttlMs ?? VERIFIED_TTL_MS;
    this.#maxEntries = Math.max(1, options.maxEntries ?? VERIFIED_MAX_ENTRIES);
    this.#now = options.now ?? Date.now;
  }

  /**
   * The digest naming a (user, password, stored hash) triple. The user and the password are
   * length-prefixed so that no two different triples can be written as the same string.
   */
  digest(user: string, password: string, storedHash: string): string {
    // One string, one update: this runs on every request with Basic credentials.
    return createHmac('sha256', this.#key)
      .update(`${user.length}:${user}${password.length}:${password}${storedHash}`)
      .digest('base64url');
  }

  /** Whether the digest was remembered less than the TTL ago. An expired entry is dropped. */
  has(digest: string): boolean {
    const expires = this.#entries.get(digest);
    if (expires === undefined) return false;
    if (expires <= this.#now()) {
      this.#entries.delete(digest);
      return false;
    }
    return true;
  }

  /** Remembers a verified digest for the TTL, dropping the oldest entries beyond the bound. */
  add(digest: string): void {
    this.#entries.delete(digest); // re-inserted last: it is now the newest
    this.#entries.set(digest, this.#now() + this.#ttlMs);
    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next();
      if (oldest.done) break;
      this.#entries.delete(oldest.value);
    }
  }

  clear(): void {
    this.#entries.clear();
  }

  get size(): number {
    return this.#entries.size;
  }
}
