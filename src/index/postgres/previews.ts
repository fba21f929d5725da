import type { LifecyclePreviewIndex, PreviewRow } from '../contract.js';
import type { PgDb } from './database.js';

const COLUMNS = 'repository, policy, status, result, started_at AS "startedAt"';

/** The last lifecycle policy preview of each repository. */
export class PostgresLifecyclePreviewIndex implements LifecyclePreviewIndex {
  constructor(private readonly db: PgDb) {}

  async save(row: PreviewRow): Promise<void> {
    await this.db.run(
      `INSERT INTO ecr_lifecycle_previews (repository, policy, status, result, started_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (repository) DO UPDATE SET policy = EXCLUDED.policy, status = EXCLUDED.status,
         result = EXCLUDED.result, started_at = EXCLUDED.started_at`,
      [row.repository, row.policy, row.status, row.result, row.startedAt],
    );
  }

  async get(repo: string): Promise<PreviewRow | undefined> {
    return this.db.one<PreviewRow>(`SELECT ${COLUMNS} FROM ecr_lifecycle_previews WHERE repository = $1`, [repo]);
  }

  async forget(repo: string): Promise<void> {
    await this.db.run('DELETE FROM ecr_lifecycle_previews WHERE repository = $1', [repo]);
  }

  async all(): Promise<PreviewRow[]> {
    return this.db.rows<PreviewRow>(`SELECT ${COLUMNS} FROM ecr_lifecycle_previews ORDER BY repository`);
  }
}
