import type { PullTimeIndex, PullTimeRow } from '../contract.js';
import { limitOf, type PgDb } from './database.js';

/** When each manifest was last pulled. */
export class PostgresPullTimeIndex implements PullTimeIndex {
  constructor(private readonly db: PgDb) {}

  /**
   * The whole batch in one statement. A key given twice is folded into its latest time first
   * (one statement may not update a row twice), and rows go in key order so that two nodes
   * writing overlapping batches lock them in the same order.
   */
  async record(batch: readonly PullTimeRow[]): Promise<void> {
    if (batch.length === 0) return;
    await this.db.tx(async (q) => {
      await q.run(
        `INSERT INTO pull_times (repository, digest, pulled_at)
         SELECT r, d, max(p) FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(r, d, p)
         GROUP BY r, d ORDER BY r COLLATE "C", d COLLATE "C"
         ON CONFLICT (repository, digest) DO UPDATE SET pulled_at = GREATEST(pull_times.pulled_at, EXCLUDED.pulled_at)`,
        [batch.map((p) => p.repository), batch.map((p) => p.digest), batch.map((p) => p.pulledAt)],
      );
    });
  }

  async lastPulled(repo: string, digest: string): Promise<number | undefined> {
    const row = await this.db.one<{ pulled_at: number }>('SELECT pulled_at FROM pull_times WHERE repository = $1 AND digest = $2', [repo, digest]);
    return row?.pulled_at;
  }

  async forget(repo: string): Promise<void> {
    await this.db.run('DELETE FROM pull_times WHERE repository = $1', [repo]);
  }

  async page(after: { repository: string; digest: string }, limit: number): Promise<PullTimeRow[]> {
    return this.db.rows<PullTimeRow>(
      `SELECT repository, digest, pulled_at AS "pulledAt" FROM pull_times
       WHERE (repository, digest) > ($1, $2) ORDER BY repository, digest LIMIT $3`,
      [after.repository, after.digest, limitOf(limit)],
    );
  }
}
