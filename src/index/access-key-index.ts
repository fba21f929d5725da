import type { Db } from './database.js';

/** One row of `access_keys`, as stored (scopes as their JSON text, times in ms since the epoch). */
export interface AccessKeyRow {
  id: string;
  user: string;
  secretHash: string;
  scopes: string;
  description: string | null;
  createdAt: number;
  expiresAt: number | null;
  lastUsedAt: number | null;
  revokedAt: number | null;
}

/** A row without its secret's hash: what listings show. */
export type AccessKeyListRow = Omit<AccessKeyRow, 'secretHash'>;

const COLUMNS = `id, user, scopes, description, created_at AS createdAt, expires_at AS expiresAt,
  last_used_at AS lastUsedAt, revoked_at AS revokedAt`;

/**
 * The access keys of the SQLite index. Every method is synchronous and short. Unlike the rest of
 * the index, these rows cannot be rebuilt from the blob store (reindex leaves them alone).
 */
export class AccessKeyIndex {
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

  insert(row: Omit<AccessKeyRow, 'lastUsedAt' | 'revokedAt'>): void {
    this.s.insert.run(row.id, row.user, row.secretHash, row.scopes, row.description, row.createdAt, row.expiresAt);
  }

  byId(id: string): AccessKeyRow | undefined {
    return this.s.byId.get(id);
  }

  /** Every key, oldest first, without the secrets' hashes. */
  list(): AccessKeyListRow[] {
    return this.s.list.all();
  }

  /**
   * Marks the key revoked at `at`. False when no key has this id; a key revoked before keeps its
   * first revocation time (and true is returned).
   */
  revoke(id: string, at: number): boolean {
    if (this.s.revoke.run(at, id).changes > 0) return true;
    return this.s.exists.get(id) !== undefined;
  }

  /** Records when the key was last used. */
  touch(id: string, lastUsedAt: number): void {
    this.s.touch.run(lastUsedAt, id);
  }
}
