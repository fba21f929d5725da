import type { PullTimeIndex, PullTimeRow } from '../contract.js';
import type { Db } from './database.js';

export class SqlitePullTimeIndex implements PullTimeIndex {
  private readonly s;

  constructor(private readonly db: Db) {
    this.s = {
      upsert: db.prepare(
        `INSERT INTO pull_times (repository, digest, pulled_at) VALUES (?, ?, ?)
         ON CONFLICT (repository, digest) DO UPDATE SET pulled_at = max(pulled_at, excluded.pulled_at)`,
      ),
      read: db.prepare<[string, string], number>('SELECT pulled_at FROM pull_times WHERE repository = ? AND digest = ?').pluck(),
      forget: db.prepare('DELETE FROM pull_times WHERE repository = ?'),
      page: db.prepare<[string, string, string, number], PullTimeRow>(
        `SELECT repository, digest, pulled_at AS pulledAt FROM pull_times
         WHERE repository > ? OR (repository = ? AND digest > ?) ORDER BY repository, digest LIMIT ?`,
      ),
    };
  }

  async record(batch: readonly PullTimeRow[]): Promise<void> {
    this.db.transaction(() => {
      for (const p of batch) this.s.upsert.run(p.repository, p.digest, p.pulledAt);
    })();
  }

  async lastPulled(repo: string, digest: string): Promise<number | undefined> {
    return this.s.read.get(repo, digest);
  }

  async forget(repo: string): Promise<void> {
    this.s.forget.run(repo);
  }

  async page(after: { repository: string; digest: string }, limit: number): Promise<PullTimeRow[]> {
    return this.s.page.all(after.repository, after.repository, after.digest, limit);
  }
}
