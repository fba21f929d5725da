export const version = 2;
export const name = 'access keys';
export const sql = `
-- Access keys (robot accounts): a secret that signs in as its user, limited to its scopes.
-- Only the SHA-256 of the secret is kept; the secret is shown once, when the key is created.
CREATE TABLE access_keys (
  id TEXT PRIMARY KEY,
  user TEXT NOT NULL,
  secret_hash TEXT NOT NULL,
  scopes TEXT NOT NULL /* JSON: the grants, as ScopeGrant objects */,
  description TEXT,
  created_at INTEGER NOT NULL,
  expires_at INTEGER,
  last_used_at INTEGER,
  revoked_at INTEGER
) WITHOUT ROWID;
CREATE INDEX access_keys_by_user ON access_keys (user);
`;
