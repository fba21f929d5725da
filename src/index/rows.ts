/** Row shaping that both implementations of the index share. */
import type { EcrRepositoryRow, EcrSetting, NewManifest } from './contract.js';

/** ECR's settings of a repository as stored: null where the repository has no row of its own. */
export interface StoredEcrRow {
  name: string;
  createdAt: number;
  tagMutability: string | null;
  mutabilityExclusions: string | null;
  /** A boolean in PostgreSQL, 0 or 1 in SQLite. */
  scanOnPush: boolean | number | null;
  encryption: string | null;
  resourceTags: string | null;
  policy: string | null;
  lifecyclePolicy: string | null;
  lifecyclePolicyUpdatedAt: number | null;
}

/** The settings a repository has until something sets them (as the migrations' defaults). */
const ECR_DEFAULTS = {
  tagMutability: 'MUTABLE',
  mutabilityExclusions: '[]',
  scanOnPush: false,
  encryption: '{"encryptionType":"AES256"}',
  resourceTags: '[]',
} as const;

/** The row with ECR's defaults where it holds no setting. */
export function withEcrDefaults(row: StoredEcrRow): EcrRepositoryRow {
  return {
    name: row.name,
    createdAt: row.createdAt,
    tagMutability: row.tagMutability ?? ECR_DEFAULTS.tagMutability,
    mutabilityExclusions: row.mutabilityExclusions ?? ECR_DEFAULTS.mutabilityExclusions,
    scanOnPush: row.scanOnPush === null || row.scanOnPush === undefined ? ECR_DEFAULTS.scanOnPush : Boolean(row.scanOnPush),
    encryption: row.encryption ?? ECR_DEFAULTS.encryption,
    resourceTags: row.resourceTags ?? ECR_DEFAULTS.resourceTags,
    policy: row.policy ?? null,
    lifecyclePolicy: row.lifecyclePolicy ?? null,
    lifecyclePolicyUpdatedAt: row.lifecyclePolicyUpdatedAt ?? null,
  };
}

/** (digest, tag) rows in order, as each digest's list of tags. */
export function groupTags(rows: Iterable<{ digest: string; name: string }>): Map<string, string[]> {
  const tags = new Map<string, string[]>();
  for (const { digest, name } of rows) {
    const list = tags.get(digest);
    if (list) list.push(name);
    else tags.set(digest, [name]);
  }
  return tags;
}

/** The ECR settings one can change after creation, by the column that holds each (the same in both schemas). */
export const ECR_SETTING_COLUMNS = {
  tagMutability: 'tag_mutability',
  mutabilityExclusions: 'mutability_exclusions',
  scanOnPush: 'scan_on_push',
  resourceTags: 'resource_tags',
  policy: 'policy',
  lifecyclePolicy: 'lifecycle_policy',
  lifecyclePolicyUpdatedAt: 'lifecycle_policy_updated_at',
} as const satisfies Record<EcrSetting, string>;

/**
 * A new manifest's row, in the column order both schemas' inserts take: repository, digest, media
 * type, size, content, artifact type, subject, annotations (JSON), creation time.
 */
export function manifestColumns(
  repoId: number,
  m: NewManifest,
  now: number,
): [number, string, string, number, Buffer, string | null, string | null, string | null, number] {
  return [repoId, m.digest, m.mediaType, m.content.length, m.content, m.artifactType ?? null, m.subject ?? null, m.annotations ? JSON.stringify(m.annotations) : null, now];
}
