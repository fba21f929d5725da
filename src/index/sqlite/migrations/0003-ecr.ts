export const version = 3;
export const name = 'ecr settings and pull times';
export const sql = `
-- ECR's settings of a repository. A repository of the index without a row has ECR's defaults;
-- a row without a repository is a repository created empty (CreateRepository). Like access keys,
-- these live in the index only: reindex keeps them.
CREATE TABLE ecr_repositories (
  name TEXT PRIMARY KEY,
  created_at INTEGER NOT NULL,
  tag_mutability TEXT NOT NULL DEFAULT 'MUTABLE',
  mutability_exclusions TEXT NOT NULL DEFAULT '[]' /* JSON: [{filterType, filter}] */,
  scan_on_push INTEGER NOT NULL DEFAULT 0,
  encryption TEXT NOT NULL DEFAULT '{"encryptionType":"AES256"}' /* JSON: {encryptionType, kmsKey?} */,
  resource_tags TEXT NOT NULL DEFAULT '[]' /* JSON: [{Key, Value}] */,
  policy TEXT,
  lifecycle_policy TEXT,
  lifecycle_policy_updated_at INTEGER
) WITHOUT ROWID;

-- Repository creation templates by prefix ('ROOT' for every repository).
CREATE TABLE ecr_creation_templates (
  prefix TEXT PRIMARY KEY,
  template TEXT NOT NULL /* JSON: the template's fields as the API has them */,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Registry-wide settings by name (the registry policy).
CREATE TABLE ecr_registry_settings (
  name TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- The last lifecycle policy preview of each repository.
CREATE TABLE ecr_lifecycle_previews (
  repository TEXT PRIMARY KEY,
  policy TEXT NOT NULL,
  status TEXT NOT NULL /* IN_PROGRESS | COMPLETE | EXPIRED | FAILED */,
  result TEXT /* JSON: the images a run would expire, with the rule that expires each */,
  started_at INTEGER NOT NULL
) WITHOUT ROWID;

-- When each manifest was last pulled, written in batches rather than on every pull.
CREATE TABLE pull_times (
  repository TEXT NOT NULL,
  digest TEXT NOT NULL,
  pulled_at INTEGER NOT NULL,
  PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
`;
