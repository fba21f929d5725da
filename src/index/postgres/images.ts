/**
 * The read queries of ECR's image operations and of the lifecycle engine, over PostgreSQL: a
 * page is one query for the manifests and one for their tags, whatever its size.
 */
import type { ImageIdCursor, ImageIdRow, ImageIndex, ImageReferrerRow, ImageRow, ManifestFactsRow, TagStatus } from '../contract.js';
import { limitOf, type PgDb } from './database.js';
import { groupTags } from '../rows.js';

const IMAGE_COLUMNS = `m.digest, m.media_type AS "mediaType", m.artifact_type AS "artifactType", m.subject,
  m.size, m.created_at AS "createdAt", m.content`;
const HAS_TAG = 'EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)';
const STATUS_FILTER: Record<TagStatus, string> = { ANY: '', TAGGED: `AND ${HAS_TAG}`, UNTAGGED: `AND NOT ${HAS_TAG}` };

export class PostgresImageIndex implements ImageIndex {
  constructor(private readonly db: PgDb) {}

  async repositoryId(repo: string): Promise<number | undefined> {
    return (await this.db.one<{ id: number }>('SELECT id FROM repositories WHERE name = $1', [repo]))?.id;
  }

  async images(repoId: number, status: TagStatus, afterDigest: string, limit: number): Promise<ImageRow[]> {
    return this.db.rows<ImageRow>(
      `SELECT ${IMAGE_COLUMNS} FROM manifests m WHERE m.repository_id = $1 AND m.digest > $2 ${STATUS_FILTER[status]}
       ORDER BY m.digest LIMIT $3`,
      [repoId, afterDigest, limitOf(limit)],
    );
  }

  /** Image ids after the cursor, in (digest, tag) order: one per tag, one per untagged manifest. */
  async imageIds(repoId: number, status: TagStatus, after: ImageIdCursor, limit: number): Promise<ImageIdRow[]> {
    const params = [repoId, after.digest, after.tag, limitOf(limit)];
    if (status === 'TAGGED') {
      return this.db.rows<ImageIdRow>(
        `SELECT digest, name AS tag FROM tags
         WHERE repository_id = $1 AND digest >= $2 AND (digest > $2 OR name > $3)
         ORDER BY digest, name LIMIT $4`,
        params,
      );
    }
    if (status === 'ANY') {
      // Every (digest, tag) pair after the cursor, and untagged manifests as (digest, NULL): a
      // manifest with tags has no NULL row, one without has only that row (first, as in SQLite).
      return this.db.rows<ImageIdRow>(
        `SELECT m.digest, t.name AS tag FROM manifests m
         LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest
         WHERE m.repository_id = $1 AND m.digest >= $2 AND (m.digest > $2 OR coalesce(t.name, '') > $3)
         ORDER BY m.digest, t.name NULLS FIRST LIMIT $4`,
        params,
      );
    }
    // An untagged manifest has one id: a cursor on it has passed it.
    return (await this.images(repoId, 'UNTAGGED', after.digest, limit)).map((m) => ({ digest: m.digest, tag: null }));
  }

  async imagesByDigest(repoId: number, digests: readonly string[]): Promise<Map<string, ImageRow>> {
    const found = new Map<string, ImageRow>();
    if (digests.length === 0) return found;
    const rows = await this.db.rows<ImageRow>(
      `SELECT ${IMAGE_COLUMNS} FROM manifests m WHERE m.repository_id = $1 AND m.digest = ANY($2::text[])`,
      [repoId, [...new Set(digests)]],
    );
    for (const row of rows) found.set(row.digest, row);
    return found;
  }

  async image(repoId: number, digest: string): Promise<ImageRow | undefined> {
    return this.db.one<ImageRow>(`SELECT ${IMAGE_COLUMNS} FROM manifests m WHERE m.repository_id = $1 AND m.digest = $2`, [repoId, digest]);
  }

  async tagDigest(repoId: number, tag: string): Promise<string | undefined> {
    return (await this.db.one<{ digest: string }>('SELECT digest FROM tags WHERE repository_id = $1 AND name = $2', [repoId, tag]))?.digest;
  }

  /** The tags of each of `digests`, in byte order (a digest without tags is absent). */
  async tagsOf(repoId: number, digests: readonly string[]): Promise<Map<string, string[]>> {
    if (digests.length === 0) return new Map();
    return groupTags(
      await this.db.rows<{ digest: string; name: string }>(
        'SELECT digest, name FROM tags WHERE repository_id = $1 AND digest = ANY($2::text[]) ORDER BY digest, name',
        [repoId, [...new Set(digests)]],
      ),
    );
  }

  async allTags(repoId: number): Promise<Map<string, string[]>> {
    return groupTags(
      await this.db.rows<{ digest: string; name: string }>('SELECT digest, name FROM tags WHERE repository_id = $1 ORDER BY digest, name', [
        repoId,
      ]),
    );
  }

  async manifestFacts(repoId: number): Promise<ManifestFactsRow[]> {
    return this.db.rows<ManifestFactsRow>(
      'SELECT digest, subject, created_at AS "createdAt" FROM manifests WHERE repository_id = $1 ORDER BY digest',
      [repoId],
    );
  }

  async childDigests(repoId: number): Promise<Set<string>> {
    const rows = await this.db.rows<{ digest: string }>(
      `SELECT DISTINCT r.digest FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id
       WHERE m.repository_id = $1 AND r.kind = 'manifest'`,
      [repoId],
    );
    return new Set(rows.map((r) => r.digest));
  }

  async parentsOf(repoId: number, digest: string): Promise<string[]> {
    const rows = await this.db.rows<{ digest: string }>(
      `SELECT m.digest FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id
       WHERE r.digest = $1 AND r.kind = 'manifest' AND m.repository_id = $2 ORDER BY m.digest`,
      [digest, repoId],
    );
    return rows.map((r) => r.digest);
  }

  async blobReferenced(repoId: number, digest: string): Promise<boolean> {
    const row = await this.db.one(
      `SELECT 1 FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id
       WHERE r.digest = $1 AND r.kind = 'blob' AND m.repository_id = $2 LIMIT 1`,
      [digest, repoId],
    );
    return row !== undefined;
  }

  /** Manifests whose subject is `subject`, after `after` in digest order, of the given artifact types (all without). */
  async referrers(repoId: number, subject: string, after: string, limit: number, artifactTypes?: readonly string[]): Promise<ImageReferrerRow[]> {
    const types = artifactTypes && artifactTypes.length > 0 ? [...artifactTypes] : null;
    return this.db.rows<ImageReferrerRow>(
      `SELECT digest, media_type AS "mediaType", size, artifact_type AS "artifactType", annotations FROM manifests
       WHERE repository_id = $1 AND subject = $2 AND digest > $3
         AND ($4::text[] IS NULL OR artifact_type = ANY($4::text[]))
       ORDER BY digest LIMIT $5`,
      [repoId, subject, after, types, limitOf(limit)],
    );
  }
}

