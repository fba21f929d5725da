export const version = 2;
export const name = 'access keys';
// "user" is a reserved word in PostgreSQL, hence the quotes wherever the column is named.
export const sql = `
-- Access keys (robot accounts): a secret that signs in as its user, limited to its scopes.
-- Only the SHA-256 of the secret is kept; the secret is shown once, when the key is created.
CREATE TABLE access_keys (
  id text COLLATE "C" PRIMARY KEY,
  "user" text COLLATE "C" NOT NULL,
  secret_hash text NOT NULL,
  scopes text NOT NULL /* JSON: the grants, as ScopeGrant objects */,
  description text,
  created_at bigint NOT NULL,
  expires_at bigint,
  last_used_at bigint,
  revoked_at bigint
);
CREATE INDEX access_keys_by_user ON access_keys ("user");
`;
