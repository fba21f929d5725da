export const version = 1;
export const name = 'initial schema';
// Text that is sorted or compared with > (names, tags, digests) is COLLATE "C": byte order, as
// SQLite's BINARY collation gives, whatever the database's default collation is.
export const sql = `
CREATE TABLE repositories (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text COLLATE "C" NOT NULL UNIQUE,
  created_at bigint NOT NULL,
  -- Bumped by every tag write of the repository: what a node's tag cache checks.
  tags_version bigint NOT NULL DEFAULT 0
);
-- Moved on by every removal of repositories (deleteRepository, clear): the tags version of a
-- repository that does not exist, so that even that one never comes back to an old value.
CREATE SEQUENCE repository_removals;

-- Every blob present in the store, whatever repositories link it.
CREATE TABLE blobs (
  digest text COLLATE "C" PRIMARY KEY,
  size bigint NOT NULL,
  created_at bigint NOT NULL
);

-- Blobs pushed or mounted into a repository: only these are readable there.
CREATE TABLE repository_blobs (
  repository_id integer NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  digest text COLLATE "C" NOT NULL REFERENCES blobs(digest),
  created_at bigint NOT NULL,
  PRIMARY KEY (repository_id, digest)
);
-- Which repositories hold a blob (automatic mounts), and the foreign key's own checks.
CREATE INDEX repository_blobs_by_digest ON repository_blobs (digest);

CREATE TABLE manifests (
  id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  repository_id integer NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  digest text COLLATE "C" NOT NULL,
  media_type text NOT NULL,
  size bigint NOT NULL,
  content bytea NOT NULL,
  -- artifactType, or the config's media type (what the referrers API reports)
  artifact_type text,
  subject text COLLATE "C",
  annotations text,
  created_at bigint NOT NULL,
  UNIQUE (repository_id, digest)
);
CREATE INDEX manifests_by_subject ON manifests (repository_id, subject) WHERE subject IS NOT NULL;

-- What a manifest points at: its config and layers (blob) or its children (manifest).
CREATE TABLE manifest_references (
  manifest_id integer NOT NULL REFERENCES manifests(id) ON DELETE CASCADE,
  digest text COLLATE "C" NOT NULL,
  kind text NOT NULL CHECK (kind IN ('blob', 'manifest')),
  PRIMARY KEY (manifest_id, kind, digest)
);
CREATE INDEX manifest_references_by_digest ON manifest_references (digest);

CREATE TABLE tags (
  repository_id integer NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
  name text COLLATE "C" NOT NULL,
  digest text COLLATE "C" NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (repository_id, name)
);
CREATE INDEX tags_by_digest ON tags (repository_id, digest);

CREATE TABLE uploads (
  id text COLLATE "C" PRIMARY KEY,
  repository text COLLATE "C" NOT NULL,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL
);
`;
