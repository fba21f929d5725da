export const version = 6;
export const name = 'ecr pull-through cache rules';
// ECR's pull-through cache rules by repository prefix (without its trailing '/'; 'ROOT' for every
// name). Like the creation templates, they live in the index only: reindex keeps them.
export const sql = `
CREATE TABLE ecr_pull_through_rules (
  prefix TEXT PRIMARY KEY,
  rule TEXT NOT NULL /* JSON: the rule's fields as the API has them, and the upstream's base URL */,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`;
