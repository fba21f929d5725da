/**
 * The users of an htpasswd file (`user:hash` lines, as `htpasswd -B` writes them) and the check of
 * their passwords. Only bcrypt entries are accepted. The file is re-read when it changes; a version
 * that does not parse is refused and the users loaded before stay.
 *
 * bcrypt runs on libuv's thread pool (the async API of the `bcrypt` package), never on the event
 * loop. An unknown user costs one comparison against a dummy hash of the cost of one of the file's
 * entries, always the same one for a given name, so that response times do not tell which users exist
 * (with mixed costs too: an unknown name answers like some known user does). Passwords verified in the last minute
 * are remembered (see verified-cache.ts), and identical checks running at once share one comparison.
 *
 * Passwords longer than 72 bytes: bcrypt reads only the first 72. `htpasswd -B` (apache2-utils) does
 * the same, silently: a password of 80 characters set with it verifies (`htpasswd -v`) with its first 72
 * alone. Such passwords are therefore accepted and truncated the same way, so that every password
 * htpasswd accepts works here.
 */
import { watchFile, unwatchFile, type Stats } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { ConfigError } from '../config/config.js';
import { VerifiedCache } from './verified-cache.js';
import { Limiter } from './limiter.js';

/** The part of the `bcrypt` package used here (it ships no type declarations). */
interface Bcrypt {
  compare(data: string, encrypted: string): Promise<boolean>;
  hash(data: string, rounds: number): Promise<string>;
}
const bcrypt = createRequire(import.meta.url)('bcrypt') as Bcrypt;

/** Where reloads are reported: a pino-style logger (values as fields, a fixed message). */
export interface HtpasswdLog {
  info(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export interface HtpasswdOptions {
  /** How often watch() looks at the file (default 1000 ms). */
  pollIntervalMs?: number;
  /** How long a verified password is remembered (default 60 s). */
  cacheTtlMs?: number;
  /** Bound of the verified-password cache (default 10,000). */
  cacheMaxEntries?: number;
  /** The clock of the cache; injectable for tests. */
  now?: () => number;
}

interface Entry {
  /** The hash as written in the file. */
  readonly hash: string;
  /** The same hash as node's bcrypt reads it (`$2y$` → `$2b$`, the same algorithm). */
  readonly comparable: string;
  readonly cost: number;
  readonly line: number;
}

interface Parsed {
  readonly users: ReadonlyMap<string, Entry>;
  /**
   * Dummy hashes for unknown users, one per entry of the file (by its cost; one of the default cost
   * for an empty file). An unknown name always gets the same one, picked by a keyed hash of the name,
   * so that with mixed costs it answers like some known user, steadily, not like none of them.
   */
  readonly dummies: readonly string[];
}

/** The costs `htpasswd -B -C` accepts; beyond them one check would take seconds to hours. */
export const MIN_COST = 4;
export const MAX_COST = 17;
/** The dummy hash's cost when the file has no entry to take it from. */
export const DEFAULT_DUMMY_COST = 10;

/** bcrypt comparisons running at once, process-wide (see Limiter). */
export const BCRYPT_CONCURRENCY = 1;
/** Comparisons that may wait for a slot; past it a new check is refused at once (PasswordCheckBusyError). */
export const BCRYPT_BACKLOG = 64;
const bcryptSlots = new Limiter(BCRYPT_CONCURRENCY);

/** Too many password checks are waiting: the caller should answer "retry shortly". */
export class PasswordCheckBusyError extends Error {
  override name = 'PasswordCheckBusyError';
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;

export class HtpasswdUsers {
  #users: ReadonlyMap<string, Entry>;
  #dummies: readonly string[];
  readonly #dummyKey = randomBytes(32);
  #generation = 0;
  readonly #cache: VerifiedCache;
  readonly #inflight = new Map<string, Promise<boolean>>();
  #watching = false;
  #reloading: Promise<boolean> | undefined;
  #reloadAgain = false;
  #missingReported = false;

  private constructor(
    readonly path: string,
    parsed: Parsed,
    private readonly log: HtpasswdLog | undefined,
    private readonly options: HtpasswdOptions,
  ) {
    this.#users = parsed.users;
    this.#dummies = parsed.dummies;
    this.#cache = new VerifiedCache({
      ...(options.cacheTtlMs !== undefined ? { ttlMs: options.cacheTtlMs } : {}),
      ...(options.cacheMaxEntries !== undefined ? { maxEntries: options.cacheMaxEntries } : {}),
      ...(options.now ? { now: options.now } : {}),
    });
  }

  /** Reads and checks the file; throws ConfigError naming the file, the line and the user of each problem. */
  static async load(path: string, log?: HtpasswdLog, options: HtpasswdOptions = {}): Promise<HtpasswdUsers> {
    return new HtpasswdUsers(path, await readUsers(path), log, options);
  }

  has(user: string): boolean {
    return this.#users.has(user);
  }

  get size(): number {
    return this.#users.size;
  }

  /** 0 after load, one more after each reload that was taken. */
  get generation(): number {
    return this.#generation;
  }

  /**
   * A fingerprint of the user's stored hash (16 bytes of its SHA-256, base64url), carried by refresh
   * tokens so that changing the password in the file ends them; undefined for an unknown user.
   */
  credentialStamp(user: string): string | undefined {
    const entry = this.#users.get(user);
    return entry && createHash('sha256').update(entry.hash).digest().subarray(0, 16).toString('base64url');
  }

  /** How often a password check was answered from the cache of recent verifications (for metrics). */
  get cacheStats(): { readonly hits: number; readonly misses: number } {
    return this.#cache.stats;
  }

  /** Whether this (user, password) verified within the last minute: no bcrypt, no waiting. */
  recentlyVerified(user: string, password: string): boolean {
    const entry = this.#users.get(user);
    const verified = entry !== undefined && password !== '' && this.#cache.has(this.#cache.digest(user, password, entry.hash));
    // A miss here is counted by the verify() that follows.
    if (verified) this.#cache.stats.hits++;
    return verified;
  }

  /**
   * Whether the password is the user's. Unknown users and wrong passwords both cost one bcrypt
   * comparison (unless an identical check is already running, whose result is shared).
   */
  async verify(user: string, password: string): Promise<boolean> {
    if (password === '') return false; // never a credential, whatever the file says
    const entry = this.#users.get(user);
    const digest = this.#cache.digest(user, password, entry?.hash ?? '');
    if (entry && this.#cache.has(digest)) {
      this.#cache.stats.hits++;
      return true;
    }
    this.#cache.stats.misses++;
    const running = this.#inflight.get(digest);
    if (running) return running;
    if (bcryptSlots.pending >= BCRYPT_BACKLOG) throw new PasswordCheckBusyError('too many password checks waiting');
    const check = this.#compare(user, entry, password, digest).finally(() => this.#inflight.delete(digest));
    this.#inflight.set(digest, check);
    return check;
  }

  /** The dummy hash an unknown user is compared against: the same one for a name every time. */
  #dummyFor(user: string): string {
    const pick = createHmac('sha256', this.#dummyKey).update(user).digest().readUInt32BE(0);
    return this.#dummies[pick % this.#dummies.length]!;
  }

  async #compare(user: string, entry: Entry | undefined, password: string, digest: string): Promise<boolean> {
    const matches = await bcryptSlots.run(() => bcrypt.compare(password, entry?.comparable ?? this.#dummyFor(user)));
    if (!matches || !entry) return false;
    this.#cache.add(digest);
    return true;
  }

  /**
   * Re-reads the file now. True when the new version was taken; false when it was refused (logged,
   * the previous users stay). Reloads never overlap: one asked for during another runs after it.
   */
  reload(): Promise<boolean> {
    if (this.#reloading) {
      this.#reloadAgain = true;
      return this.#reloading;
    }
    const run = async (): Promise<boolean> => {
      let taken: boolean;
      do {
        this.#reloadAgain = false;
        taken = await this.#reloadOnce();
      } while (this.#reloadAgain);
      return taken;
    };
    this.#reloading = run().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  async #reloadOnce(): Promise<boolean> {
    let parsed: Parsed;
    try {
      parsed = await readUsers(this.path);
    } catch (err) {
      this.log?.error(
        { path: this.path, reason: (err as Error).message, users: this.#users.size },
        'htpasswd file refused; the users loaded before stay',
      );
      return false;
    }
    this.#users = parsed.users;
    this.#dummies = parsed.dummies;
    this.#generation += 1;
    this.#missingReported = false;
    this.log?.info({ path: this.path, users: parsed.users.size, generation: this.#generation }, 'htpasswd file reloaded');
    return true;
  }

  /**
   * Re-reads the file whenever it changes. The path is polled with fs.watchFile, which notices a
   * new file renamed over the old one (as editors and `htpasswd` replace files) as well as writes
   * in place. A missing file is reported once and the users stay until it is back.
   */
  watch(): void {
    if (this.#watching) return;
    this.#watching = true;
    watchFile(this.path, { interval: this.options.pollIntervalMs ?? 1000, persistent: false }, this.#onChange);
  }

  /** Stops watching the file. */
  close(): void {
    if (!this.#watching) return;
    this.#watching = false;
    unwatchFile(this.path, this.#onChange);
  }

  readonly #onChange = (current: Stats, previous: Stats): void => {
    if (current.nlink === 0 && current.mtimeMs === 0) {
      if (!this.#missingReported) {
        this.#missingReported = true;
        this.log?.error({ path: this.path, users: this.#users.size }, 'htpasswd file is missing; the users loaded before stay');
      }
      return;
    }
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino && current.size === previous.size) return;
    void this.reload();
  };
}

async function readUsers(path: string): Promise<Parsed> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read htpasswd file ${path}: ${(err as Error).message}`);
  }
  const users = parseHtpasswd(text, path);
  const costs = users.size > 0 ? [...users.values()].map((e) => e.cost) : [DEFAULT_DUMMY_COST];
  const byCost = new Map<number, string>();
  for (const cost of new Set(costs)) byCost.set(cost, await dummyHash(cost));
  return { users, dummies: costs.map((c) => byCost.get(c)!) };
}

/**
 * The entries of an htpasswd file. Blank lines and lines starting with `#` are skipped; CRLF line
 * ends are tolerated. Every problem is reported with its line number and user, never with the hash.
 */
export function parseHtpasswd(text: string, path: string): Map<string, Entry> {
  const users = new Map<string, Entry>();
  const problems: string[] = [];
  const lines = text.replace(/^\uFEFF/, '').split('\n');
  lines.forEach((raw, index) => {
    const line = index + 1;
    const content = raw.replace(/\r$/, '');
    if (content.trim() === '' || content.trimStart().startsWith('#')) return;
    const colon = content.indexOf(':');
    if (colon < 0) {
      problems.push(`line ${line}: expected user:hash (no ":" on the line)`);
      return;
    }
    const user = content.slice(0, colon);
    const hash = content.slice(colon + 1).trimEnd();
    const who = `user ${JSON.stringify(user)}`;
    if (user === '') {
      problems.push(`line ${line}: the user name is empty`);
      return;
    }
    if (user.trim() !== user || /[\x00-\x1f\x7f]/.test(user)) {
      problems.push(`line ${line}: ${who}: the user name has surrounding spaces or control characters`);
      return;
    }
    const refused = refusedFormat(hash);
    if (refused) {
      problems.push(`line ${line}: ${who}: ${refused}`);
      return;
    }
    const cost = Number(BCRYPT.exec(hash)![1]);
    if (cost < MIN_COST || cost > MAX_COST) {
      problems.push(`line ${line}: ${who}: bcrypt cost ${cost} is outside ${MIN_COST}..${MAX_COST} (what htpasswd -B -C accepts)`);
      return;
    }
    const earlier = users.get(user);
    if (earlier) {
      problems.push(`line ${line}: ${who} is listed twice (lines ${earlier.line} and ${line})`);
      return;
    }
    users.set(user, { hash, comparable: hash.replace(/^\$2y\$/, '$2b$'), cost, line });
  });
  if (problems.length > 0) {
    throw new ConfigError(`invalid htpasswd file ${path}:\n  ${problems.join('\n  ')}`);
  }
  return users;
}

/** Why a hash is refused (named by its format, never shown), or undefined for a bcrypt hash. */
function refusedFormat(hash: string): string | undefined {
  if (BCRYPT.test(hash)) return undefined;
  const only = 'only bcrypt entries are accepted (htpasswd -B)';
  if (hash === '') return `the hash is empty; ${only}`;
  if (/^\$2[aby]\$/.test(hash)) return 'malformed bcrypt hash';
  if (hash.startsWith('$apr1$')) return `MD5 (apr1) hashes are not accepted; ${only}`;
  if (hash.startsWith('{SHA}')) return `SHA-1 ({SHA}) hashes are not accepted; ${only}`;
  if (hash.startsWith('$1$')) return `MD5-crypt hashes are not accepted; ${only}`;
  if (/^\$[56]\$/.test(hash)) return `SHA-crypt hashes are not accepted; ${only}`;
  if (/^[./0-9A-Za-z]{13}$/.test(hash)) return `crypt (DES) hashes, or plain-text passwords, are not accepted; ${only}`;
  return `not a bcrypt hash (plain text or an unknown format); ${only}`;
}

/** One dummy hash per cost, made once per process (on the thread pool), of a random password. */
const dummies = new Map<number, Promise<string>>();

function dummyHash(cost: number): Promise<string> {
  let dummy = dummies.get(cost);
  if (!dummy) {
    dummy = bcrypt.hash(randomBytes(18).toString('base64'), cost);
    dummies.set(cost, dummy);
    dummy.catch(() => dummies.delete(cost));
  }
  return dummy;
}
