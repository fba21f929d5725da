import type { Db } from '../index/database.js';

/** Pulls remembered before a flush, at most; past it the oldest are written at once. */
const MAX_PENDING = 50_000;

/**
 * When each manifest was last pulled (ECR's lastRecordedPullTime), without a write per pull:
 * pulls are remembered in memory and written in one transaction every `flushMs` (and on close).
 * A pull recorded within the last flush window may be up to `flushMs` late in the index.
 */
export class PullTimes {
  private pending = new Map<string, { repo: string; digest: string; at: number }>();
  private readonly upsert;
  private readonly read;
  private readonly forgetRepo;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly db: Db,
    private readonly flushMs = 5_000,
  ) {
    this.upsert = db.prepare(
      `INSERT INTO pull_times (repository, digest, pulled_at) VALUES (?, ?, ?)
       ON CONFLICT (repository, digest) DO UPDATE SET pulled_at = max(pulled_at, excluded.pulled_at)`,
    );
    this.read = db.prepare<[string, string], { at: number }>('SELECT pulled_at AS at FROM pull_times WHERE repository = ? AND digest = ?');
    this.forgetRepo = db.prepare('DELETE FROM pull_times WHERE repository = ?');
  }

  /** Notes a pull of a manifest (cheap: a map entry). */
  record(repo: string, digest: string, at = Date.now()): void {
    const key = `${repo}@${digest}`;
    this.pending.delete(key); // re-inserted last, so that the map's order is the order of last pulls
    this.pending.set(key, { repo, digest, at });
    if (this.pending.size >= MAX_PENDING) this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** The last recorded pull of a manifest (ms), counting pulls not yet written. */
  lastPulled(repo: string, digest: string): number | undefined {
    return this.pending.get(`${repo}@${digest}`)?.at ?? this.read.get(repo, digest)?.at;
  }

  /** Forgets a repository's pull times (it was deleted). */
  forget(repo: string): void {
    for (const [key, p] of this.pending) if (p.repo === repo) this.pending.delete(key);
    this.forgetRepo.run(repo);
  }

  /** Writes the pulls noted since the last flush, in one transaction. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.db.transaction(() => {
      for (const p of batch) this.upsert.run(p.repo, p.digest, p.at);
    })();
  }

  /** Flushes and stops the timer (the app's close). */
  close(): void {
    this.flush();
  }
}
