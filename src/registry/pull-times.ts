import type { PullTimeIndex, PullTimeRow } from '../index/contract.js';

/** Pulls remembered before a flush, at most; past it the oldest are written at once. */
const MAX_PENDING = 50_000;

/**
 * When each manifest was last pulled (ECR's lastRecordedPullTime), without a write per pull:
 * pulls are remembered in memory and written in one transaction every `flushMs` (and on close).
 * A pull recorded within the last flush window may be up to `flushMs` late in the index (and,
 * with several nodes, late as seen from the other nodes).
 */
export class PullTimes {
  private pending = new Map<string, PullTimeRow>();
  private timer: NodeJS.Timeout | undefined;
  /** The flush being written, so that close() waits for it. */
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly index: PullTimeIndex,
    private readonly flushMs = 5_000,
    /** Told of a flush that failed (the pulls are then lost: they are only statistics). */
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {}

  /** Notes a pull of a manifest (cheap: a map entry). */
  record(repo: string, digest: string, at = Date.now()): void {
    const key = `${repo}@${digest}`;
    this.pending.delete(key); // re-inserted last, so that the map's order is the order of last pulls
    this.pending.set(key, { repository: repo, digest, pulledAt: at });
    if (this.pending.size >= MAX_PENDING) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushMs);
      this.timer.unref();
    }
  }

  /** The last recorded pull of a manifest (ms), counting pulls not yet written. */
  async lastPulled(repo: string, digest: string): Promise<number | undefined> {
    return this.pending.get(`${repo}@${digest}`)?.pulledAt ?? (await this.index.lastPulled(repo, digest));
  }

  /** Forgets a repository's pull times (it was deleted). */
  async forget(repo: string): Promise<void> {
    for (const [key, p] of this.pending) if (p.repository === repo) this.pending.delete(key);
    await this.index.forget(repo);
  }

  /** Writes the pulls noted since the last flush, in one transaction. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.size === 0) return this.writing;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    const previous = this.writing;
    this.writing = previous.then(() => this.index.record(batch)).catch((err: unknown) => this.onError(err));
    return this.writing;
  }

  /** Flushes and stops the timer (the app's close). */
  async close(): Promise<void> {
    await this.flush();
  }
}
