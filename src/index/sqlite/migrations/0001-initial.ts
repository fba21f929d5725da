export const version = 1;
export const name = 'initial schema';
export const sql = `
CREATE TABLE repositories (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL
);

-- Every blob present in the store, whatever repositories link it.
CREATE TABLE blobs (
  digest TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Blobs pushed or mounted into a repository: only these are readable there.
CREATE TABLE repository_blobs (
  repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  digest TEXT NOT NULL REFERENCES blobs(digest),
  created_at INTEGER NOT NULL,
  PRIMARY KEY (repository_id, digest)
) WITHOUT ROWID;

CREATE TABLE manifests (
  id INTEGER PRIMARY KEY,
  repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  digest TEXT NOT NULL,
  media_type TEXT NOT NULL,
  size INTEGER NOT NULL,
  content BLOB NOT NULL,
  -- artifactType, or the config's media type (what the referrers API reports)
  artifact_type TEXT,
  subject TEXT,
  annotations TEXT,
  created_at INTEGER NOT NULL,
  UNIQUE (repository_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests (repository_id, subject) WHERE subject IS NOT NULL;

-- What a manifest points at: its config and layers (blob) or its children (manifest).
CREATE TABLE manifest_references (
  manifest_id INTEGER NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
  digest TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('blob', 'manifest')),
  PRIMARY KEY (manifest_id, kind, digest)
) WITHOUT ROWID;
CREATE INDEX manifest_references_by_digest ON manifest_references (digest);

CREATE TABLE tags (
  repository_id INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  digest TEXT NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (repository_id, name)
) WITHOUT ROWID;
CREATE INDEX tags_by_digest ON tags (repository_id, digest);

CREATE TABLE uploads (
  id TEXT PRIMARY KEY,
  repository TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`;
