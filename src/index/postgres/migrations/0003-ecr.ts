export const version = 3;
export const name = 'ecr settings and pull times';
export const sql = `
-- ECR's settings of a repository. A repository of the index without a row has ECR's defaults;
-- a row without a repository is a repository created empty (CreateRepository). Like access keys,
-- these live in the index only: reindex keeps them.
CREATE TABLE ecr_repositories (
  name text COLLATE "C" PRIMARY KEY,
  created_at bigint NOT NULL,
  tag_mutability text NOT NULL DEFAULT 'MUTABLE',
  mutability_exclusions text NOT NULL DEFAULT '[]' /* JSON: [{filterType, filter}] */,
  scan_on_push boolean NOT NULL DEFAULT false,
  encryption text NOT NULL DEFAULT '{"encryptionType":"AES256"}' /* JSON: {encryptionType, kmsKey?} */,
  resource_tags text NOT NULL DEFAULT '[]' /* JSON: [{Key, Value}] */,
  policy text,
  lifecycle_policy text,
  lifecycle_policy_updated_at bigint
);

-- Repository creation templates by prefix ('ROOT' for every repository).
CREATE TABLE ecr_creation_templates (
  prefix text COLLATE "C" PRIMARY KEY,
  template text NOT NULL /* JSON: the template's fields as the API has them */,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL
);

-- Registry-wide settings by name (the registry policy).
CREATE TABLE ecr_registry_settings (
  name text COLLATE "C" PRIMARY KEY,
  value text NOT NULL
);

-- The last lifecycle policy preview of each repository.
CREATE TABLE ecr_lifecycle_previews (
  repository text COLLATE "C" PRIMARY KEY,
  policy text NOT NULL,
  status text NOT NULL /* IN_PROGRESS | COMPLETE | EXPIRED | FAILED */,
  result text /* JSON: the images a run would expire, with the rule that expires each */,
  started_at bigint NOT NULL
);

-- When each manifest was last pulled, written in batches rather than on every pull.
CREATE TABLE pull_times (
  repository text COLLATE "C" NOT NULL,
  digest text COLLATE "C" NOT NULL,
  pulled_at bigint NOT NULL,
  PRIMARY KEY (repository, digest)
);
`;
