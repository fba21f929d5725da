import type { AccessKeyIndex, AccessKeyListRow, AccessKeyRow } from '../contract.js';
import type { Db } from './database.js';

const COLUMNS = `id, user, scopes, description, created_at AS createdAt, expires_at AS expiresAt,
  last_used_at AS lastUsedAt, revoked_at AS revokedAt`;

/**
 * The access keys of the SQLite index. Every method is synchronous and short. Unlike the rest of
 * the index, these rows cannot be rebuilt from the blob store (reindex leaves them alone).
 */
export class SqliteAccessKeyIndex implements AccessKeyIndex {
  private readonly s;

  constructor(readonly db: Db) {
    this.s = {
      insert: db.prepare<[string, string, string, string, string | null, number, number | null], never>(
        `INSERT INTO access_keys (id, user, secret_hash, scopes, description, created_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      ),
      byId: db.prepare<[string], AccessKeyRow>(`SELECT ${COLUMNS}, secret_hash AS secretHash FROM access_keys WHERE id = ?`),
      list: db.prepare<[], AccessKeyListRow>(`SELECT ${COLUMNS} FROM access_keys ORDER BY created_at, id`),
      revoke: db.prepare<[number, string], never>('UPDATE access_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL'),
      exists: db.prepare<[string], { id: string }>('SELECT id FROM access_keys WHERE id = ?'),
      touch: db.prepare<[number, string], never>('UPDATE access_keys SET last_used_at = ? WHERE id = ?'),
    };
  }

  async insert(row: Omit<AccessKeyRow, 'lastUsedAt' | 'revokedAt'>): Promise<void> {
    this.s.insert.run(row.id, row.user, row.secretHash, row.scopes, row.description, row.createdAt, row.expiresAt);
  }

  async byId(id: string): Promise<AccessKeyRow | undefined> {
    return this.s.byId.get(id);
  }

  /** Every key, oldest first, without the secrets' hashes. */
  async list(): Promise<AccessKeyListRow[]> {
    return this.s.list.all();
  }

  /**
   * Marks the key revoked at `at`. False when no key has this id; a key revoked before keeps its
   * first revocation time (and true is returned).
   */
  async revoke(id: string, at: number): Promise<boolean> {
    if (this.s.revoke.run(at, id).changes > 0) return true;
    return this.s.exists.get(id) !== undefined;
  }

  /** Records when the key was last used. */
  async touch(id: string, lastUsedAt: number): Promise<void> {
    this.s.touch.run(lastUsedAt, id);
  }
}
