/**
 * Slows down password guessing, per (client address, user name) pair: after `maxFailures` failed
 * logins within `windowMs` (a sliding window) the pair is locked, first for `firstLockMs`, then for
 * twice as long at each following lock, up to `maxLockMs`. A successful login clears the pair; a
 * pair without failures for `forgetMs` is forgotten (its next lock is a first one again).
 * Memory is bounded: past `maxEntries` pairs the least recently failing unlocked pair is dropped.
 * Only the address and the user name are kept, never a password.
 */

export interface LoginThrottleOptions {
  now?: () => number;
  maxFailures?: number;
  windowMs?: number;
  firstLockMs?: number;
  maxLockMs?: number;
  forgetMs?: number;
  maxEntries?: number;
  /** Failures from one address, whatever the user names, within `windowMs` before the address waits. */
  maxAddressFailures?: number;
}

export type ThrottleVerdict = { allowed: true } | { allowed: false; retryAfterSeconds: number };

interface Pair {
  /** Times of the recent failures, oldest first, within the window. */
  failures: number[];
  lastFailure: number;
  lockedUntil: number;
  /** How many locks the pair has had since it was last cleared or forgotten. */
  locks: number;
}

/** How many locked pairs eviction passes over before it drops the oldest pair anyway. */
const EVICTION_SKIP_LIMIT = 100;

const ALLOWED: ThrottleVerdict = Object.freeze({ allowed: true });

export class LoginThrottle {
  readonly #now: () => number;
  readonly #maxFailures: number;
  readonly #windowMs: number;
  readonly #firstLockMs: number;
  readonly #maxLockMs: number;
  readonly #forgetMs: number;
  readonly #maxEntries: number;
  readonly #maxAddressFailures: number;
  /** In order of last failure, oldest first. */
  readonly #pairs = new Map<string, Pair>();
  /** Per address: recent failure times and, once over the budget, until when it waits. */
  readonly #addresses = new Map<string, { failures: number[]; lockedUntil: number }>();

  constructor(options: LoginThrottleOptions = {}) {
    this.#now = options.now ?? Date.now;
    this.#maxFailures = options.maxFailures ?? 5;
    this.#windowMs = options.windowMs ?? 60_000;
    this.#firstLockMs = options.firstLockMs ?? 60_000;
    this.#maxLockMs = options.maxLockMs ?? 15 * 60_000;
    this.#forgetMs = options.forgetMs ?? 60 * 60_000;
    this.#maxEntries = options.maxEntries ?? 100_000;
    this.#maxAddressFailures = options.maxAddressFailures ?? 30;
  }

  /**
   * Whether a password check that costs bcrypt may run for this address. An address that failed
   * `maxAddressFailures` times within the window, across any user names, waits `firstLockMs`: a
   * guesser rotating user names cannot keep the CPU busy with bcrypt. Credentials that verified a
   * moment ago are not held up by it (they cost no bcrypt).
   */
  checkAddress(address: string): ThrottleVerdict {
    const now = this.#now();
    const entry = this.#addresses.get(address);
    if (!entry || entry.lockedUntil <= now) return ALLOWED;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((entry.lockedUntil - now) / 1000)) };
  }

  #addressFailed(address: string, now: number): void {
    let entry = this.#addresses.get(address);
    if (entry) this.#addresses.delete(address);
    else entry = { failures: [], lockedUntil: 0 };
    this.#addresses.set(address, entry); // to the back: most recent last
    if (entry.lockedUntil > now) return;
    entry.failures = entry.failures.filter((t) => now - t < this.#windowMs);
    entry.failures.push(now);
    if (entry.failures.length >= this.#maxAddressFailures) {
      entry.lockedUntil = now + this.#firstLockMs;
      entry.failures = [];
      this.lockouts.addresses++;
    }
    while (this.#addresses.size > this.#maxEntries) this.#addresses.delete(this.#addresses.keys().next().value!);
  }

  /** Locks begun since the start, of (address, user) pairs and of addresses (for metrics). */
  readonly lockouts = { pairs: 0, addresses: 0 };

  /** Number of pairs remembered (for tests and metrics). */
  get size(): number {
    return this.#pairs.size;
  }

  /**
   * Call before verifying a password. `inFlight` is how many other, different passwords for the
   * pair are being checked right now: they count as failures in advance, so that guesses sent in
   * parallel cannot all pass before the first failures are recorded.
   */
  check(address: string, user: string, inFlight = 0): ThrottleVerdict {
    const now = this.#now();
    const pair = this.#live(keyOf(address, user), now);
    if (pair !== undefined && pair.lockedUntil > now) {
      return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil((pair.lockedUntil - now) / 1000)) };
    }
    const recent = pair ? pair.failures.filter((t) => now - t < this.#windowMs) : [];
    if (recent.length + inFlight < this.#maxFailures) return ALLOWED;
    // Wait until the oldest failure leaves the window, or a check in flight ends.
    const freed = recent.length > 0 ? recent[0]! + this.#windowMs - now : 1000;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(freed / 1000)) };
  }

  failed(address: string, user: string): void {
    const now = this.#now();
    this.#addressFailed(address, now);
    const key = keyOf(address, user);
    const pair = this.#live(key, now) ?? { failures: [], lastFailure: now, lockedUntil: 0, locks: 0 };
    this.#pairs.delete(key);
    this.#pairs.set(key, pair);
    pair.lastFailure = now;
    if (pair.lockedUntil > now) return; // already locked: the attempt was refused, not counted
    pair.failures = pair.failures.filter((t) => now - t < this.#windowMs);
    pair.failures.push(now);
    if (pair.failures.length >= this.#maxFailures) {
      const lockMs = Math.min(this.#firstLockMs * 2 ** pair.locks, this.#maxLockMs);
      pair.locks++;
      pair.lockedUntil = now + lockMs;
      pair.failures = [];
      this.lockouts.pairs++;
    }
    this.#trim(now);
  }

  succeeded(address: string, user: string): void {
    this.#pairs.delete(keyOf(address, user));
  }

  /** The pair's state, dropped first when it had no failure for `forgetMs`. */
  #live(key: string, now: number): Pair | undefined {
    const pair = this.#pairs.get(key);
    if (pair !== undefined && now - pair.lastFailure >= this.#forgetMs && pair.lockedUntil <= now) {
      this.#pairs.delete(key);
      return undefined;
    }
    return pair;
  }

  /** Forgets stale pairs at the front, then evicts while over the bound, sparing locked pairs. */
  #trim(now: number): void {
    for (const [key, pair] of this.#pairs) {
      if (now - pair.lastFailure < this.#forgetMs || pair.lockedUntil > now) break;
      this.#pairs.delete(key);
    }
    let skipped = 0;
    while (this.#pairs.size > this.#maxEntries) {
      const [key, pair] = this.#pairs.entries().next().value as [string, Pair];
      this.#pairs.delete(key);
      if (pair.lockedUntil > now && skipped < EVICTION_SKIP_LIMIT) {
        skipped++;
        this.#pairs.set(key, pair); // to the back: a flood of new pairs must not lift a lock
      }
    }
  }
}

/** An unambiguous key for the pair (the length prefix keeps "a"+"bc" apart from "ab"+"c"). */
function keyOf(address: string, user: string): string {
  return `${address.length}:${address}|${user}`;
}
