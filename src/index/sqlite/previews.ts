import type { LifecyclePreviewIndex, PreviewRow } from '../contract.js';
import type { Db } from './database.js';

const COLUMNS = 'repository, policy, status, result, started_at AS startedAt';

export class SqliteLifecyclePreviewIndex implements LifecyclePreviewIndex {
  private readonly s;

  constructor(db: Db) {
    this.s = {
      save: db.prepare(
        `INSERT INTO ecr_lifecycle_previews (repository, policy, status, result, started_at) VALUES (?, ?, ?, ?, ?)
         ON CONFLICT (repository) DO UPDATE SET policy = excluded.policy, status = excluded.status,
           result = excluded.result, started_at = excluded.started_at`,
      ),
      get: db.prepare<[string], PreviewRow>(`SELECT ${COLUMNS} FROM ecr_lifecycle_previews WHERE repository = ?`),
      forget: db.prepare('DELETE FROM ecr_lifecycle_previews WHERE repository = ?'),
      all: db.prepare<[], PreviewRow>(`SELECT ${COLUMNS} FROM ecr_lifecycle_previews ORDER BY repository`),
    };
  }

  async save(row: PreviewRow): Promise<void> {
    this.s.save.run(row.repository, row.policy, row.status, row.result, row.startedAt);
  }

  async get(repo: string): Promise<PreviewRow | undefined> {
    return this.s.get.get(repo);
  }

  async forget(repo: string): Promise<void> {
    this.s.forget.run(repo);
  }

  async all(): Promise<PreviewRow[]> {
    return this.s.all.all();
  }
}
