import type { AccessKeyIndex, AccessKeyListRow, AccessKeyRow } from '../contract.js';
import type { PgDb } from './database.js';

const COLUMNS = `id, "user", scopes, description, created_at AS "createdAt", expires_at AS "expiresAt",
  last_used_at AS "lastUsedAt", revoked_at AS "revokedAt"`;

/** The access keys of the PostgreSQL index. Not in the store: reindex leaves them alone. */
export class PostgresAccessKeyIndex implements AccessKeyIndex {
  constructor(private readonly db: PgDb) {}

  async insert(row: Omit<AccessKeyRow, 'lastUsedAt' | 'revokedAt'>): Promise<void> {
    await this.db.run(
      `INSERT INTO access_keys (id, "user", secret_hash, scopes, description, created_at, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [row.id, row.user, row.secretHash, row.scopes, row.description, row.createdAt, row.expiresAt],
    );
  }

  async byId(id: string): Promise<AccessKeyRow | undefined> {
    return this.db.one<AccessKeyRow>(`SELECT ${COLUMNS}, secret_hash AS "secretHash" FROM access_keys WHERE id = $1`, [id]);
  }

  async list(): Promise<AccessKeyListRow[]> {
    return this.db.rows<AccessKeyListRow>(`SELECT ${COLUMNS} FROM access_keys ORDER BY created_at, id`);
  }

  /** A key revoked before keeps its first revocation time (and true is returned). */
  async revoke(id: string, at: number): Promise<boolean> {
    if ((await this.db.run('UPDATE access_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [at, id])) > 0) return true;
    return (await this.db.one('SELECT 1 FROM access_keys WHERE id = $1', [id])) !== undefined;
  }

  async touch(id: string, lastUsedAt: number): Promise<void> {
    await this.db.run('UPDATE access_keys SET last_used_at = $1 WHERE id = $2', [lastUsedAt, id]);
  }
}
