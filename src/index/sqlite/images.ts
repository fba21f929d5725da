/**
 * The read queries of ECR's image operations and of the lifecycle engine: a repository's
 * manifests with what DescribeImages reports of them, their tags, which of them are children of
 * an index, their referrers. Synchronous and prepared, like RegistryIndex; a page is one query
 * for the manifests and one for their tags, whatever its size.
 */
import type { ImageIdCursor, ImageIdRow, ImageIndex, ImageReferrerRow, ImageRow, ManifestFactsRow, TagStatus } from '../contract.js';
import type { Db } from './database.js';
import { groupTags } from '../rows.js';

const IMAGE_COLUMNS = `m.digest, m.media_type AS mediaType, m.artifact_type AS artifactType, m.subject,
  m.size, m.created_at AS createdAt, m.content`;
const HAS_TAG = 'EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)';

export class SqliteImageIndex implements ImageIndex {
  private readonly s;

  constructor(readonly db: Db) {
    const page = (where: string) =>
      db.prepare<[number, string, number], ImageRow>(
        `SELECT ${IMAGE_COLUMNS} FROM manifests m WHERE m.repository_id = ? AND m.digest > ? ${where} ORDER BY m.digest LIMIT ?`,
      );
    this.s = {
      repoId: db.prepare<[string], { id: number }>('SELECT id FROM repositories WHERE name = ?'),
      pages: { ANY: page(''), TAGGED: page(`AND ${HAS_TAG}`), UNTAGGED: page(`AND NOT ${HAS_TAG}`) } satisfies Record<TagStatus, unknown>,
      // Every (digest, tag) pair after the cursor, and untagged manifests as (digest, NULL): a
      // manifest with tags has no NULL row, one without has only that row.
      idsAny: db.prepare<[{ repo: number; digest: string; tag: string; limit: number }], ImageIdRow>(
        `SELECT m.digest, t.name AS tag FROM manifests m
         LEFT JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest
         WHERE m.repository_id = @repo AND m.digest >= @digest AND (m.digest > @digest OR coalesce(t.name, '') > @tag)
         ORDER BY m.digest, t.name LIMIT @limit`,
      ),
      idsTagged: db.prepare<[{ repo: number; digest: string; tag: string; limit: number }], ImageIdRow>(
        `SELECT digest, name AS tag FROM tags
         WHERE repository_id = @repo AND digest >= @digest AND (digest > @digest OR name > @tag)
         ORDER BY digest, name LIMIT @limit`,
      ),
      byDigests: db.prepare<[number, string], ImageRow>(
        `SELECT ${IMAGE_COLUMNS} FROM manifests m WHERE m.repository_id = ? AND m.digest IN (SELECT value FROM json_each(?))`,
      ),
      tagsOf: db.prepare<[number, string], { digest: string; name: string }>(
        'SELECT digest, name FROM tags WHERE repository_id = ? AND digest IN (SELECT value FROM json_each(?)) ORDER BY digest, name',
      ),
      tagDigest: db.prepare<[number, string], { digest: string }>('SELECT digest FROM tags WHERE repository_id = ? AND name = ?'),
      allTags: db.prepare<[number], { digest: string; name: string }>('SELECT digest, name FROM tags WHERE repository_id = ? ORDER BY digest, name'),
      facts: db.prepare<[number], ManifestFactsRow>(
        'SELECT digest, subject, created_at AS createdAt FROM manifests WHERE repository_id = ? ORDER BY digest',
      ),
      children: db.prepare<[number], string>(
        `SELECT DISTINCT r.digest FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id
         WHERE m.repository_id = ? AND r.kind = 'manifest'`,
      ).pluck(),
      parents: db.prepare<[string, number], string>(
        `SELECT m.digest FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id
         WHERE r.digest = ? AND r.kind = 'manifest' AND m.repository_id = ? ORDER BY m.digest`,
      ).pluck(),
      blobReferenced: db.prepare<[string, number], number>(
        `SELECT 1 FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id
         WHERE r.digest = ? AND r.kind = 'blob' AND m.repository_id = ? LIMIT 1`,
      ).pluck(),
      referrers: db.prepare<[{ repo: number; subject: string; after: string; types: string | null; limit: number }], ImageReferrerRow>(
        `SELECT digest, media_type AS mediaType, size, artifact_type AS artifactType, annotations FROM manifests
         WHERE repository_id = @repo AND subject = @subject AND digest > @after
           AND (@types IS NULL OR artifact_type IN (SELECT value FROM json_each(@types)))
         ORDER BY digest LIMIT @limit`,
      ),
    };
  }

  async repositoryId(repo: string): Promise<number | undefined> {
    return this.s.repoId.get(repo)?.id;
  }

  /** Manifests after `afterDigest` in digest order, at most `limit`, with or without tags as `status` says. */
  async images(repoId: number, status: TagStatus, afterDigest: string, limit: number): Promise<ImageRow[]> {
    return this.s.pages[status].all(repoId, afterDigest, limit);
  }

  /** Image ids after the cursor, in (digest, tag) order: one per tag, one per untagged manifest. */
  async imageIds(repoId: number, status: TagStatus, after: ImageIdCursor, limit: number): Promise<ImageIdRow[]> {
    const params = { repo: repoId, digest: after.digest, tag: after.tag, limit };
    if (status === 'TAGGED') return this.s.idsTagged.all(params);
    if (status === 'ANY') return this.s.idsAny.all(params);
    // An untagged manifest has one id: a cursor on it has passed it.
    return (await this.images(repoId, 'UNTAGGED', after.digest, limit)).map((m) => ({ digest: m.digest, tag: null }));
  }

  /** The manifests of the repository among `digests`, by digest (absent ones are not there). */
  async imagesByDigest(repoId: number, digests: readonly string[]): Promise<Map<string, ImageRow>> {
    const found = new Map<string, ImageRow>();
    if (digests.length === 0) return found;
    for (const row of this.s.byDigests.all(repoId, JSON.stringify([...new Set(digests)]))) found.set(row.digest, row);
    return found;
  }

  async image(repoId: number, digest: string): Promise<ImageRow | undefined> {
    return (await this.imagesByDigest(repoId, [digest])).get(digest);
  }

  async tagDigest(repoId: number, tag: string): Promise<string | undefined> {
    return this.s.tagDigest.get(repoId, tag)?.digest;
  }

  /** The tags of each of `digests`, in lexical order (a digest without tags is absent). */
  async tagsOf(repoId: number, digests: readonly string[]): Promise<Map<string, string[]>> {
    if (digests.length === 0) return new Map();
    return groupTags(this.s.tagsOf.all(repoId, JSON.stringify([...new Set(digests)])));
  }

  /** Every tag of the repository, by digest. */
  async allTags(repoId: number): Promise<Map<string, string[]>> {
    return groupTags(this.s.allTags.all(repoId));
  }

  /** Every manifest of the repository, without its content, in digest order. */
  async manifestFacts(repoId: number): Promise<ManifestFactsRow[]> {
    return this.s.facts.all(repoId);
  }

  /** The digests that a manifest of the repository (an index) lists as its children. */
  async childDigests(repoId: number): Promise<Set<string>> {
    return new Set(this.s.children.all(repoId));
  }

  /** The manifests of the repository that list `digest` as a child. */
  async parentsOf(repoId: number, digest: string): Promise<string[]> {
    return this.s.parents.all(digest, repoId);
  }

  /** Whether a manifest of the repository references the blob (as its config or a layer). */
  async blobReferenced(repoId: number, digest: string): Promise<boolean> {
    return this.s.blobReferenced.get(digest, repoId) !== undefined;
  }

  /** Manifests whose subject is `subject`, after `after` in digest order, of the given artifact types (all without). */
  async referrers(repoId: number, subject: string, after: string, limit: number, artifactTypes?: readonly string[]): Promise<ImageReferrerRow[]> {
    const types = artifactTypes && artifactTypes.length > 0 ? JSON.stringify(artifactTypes) : null;
    return this.s.referrers.all({ repo: repoId, subject, after, types, limit });
  }
}

