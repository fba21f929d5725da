import type { ManifestRow, NewManifest, ReferrerRow, RegistryIndex, UploadRow } from '../contract.js';
import type { Db } from './database.js';
import { manifestColumns } from '../rows.js';

/**
 * The SQLite index: repositories, blobs and their links, manifests, tags,
 * references and upload sessions. Every method is synchronous and short;
 * callers do their I/O first and then call in here.
 */
export class SqliteRegistryIndex implements RegistryIndex {
  private readonly s;
  /** Tag writes through this connection (see tagsVersion). */
  private tagWrites = 0;

  constructor(readonly db: Db) {
    this.s = {
      repoId: db.prepare<[string], { id: number }>('SELECT id FROM repositories WHERE name = ?'),
      insertRepo: db.prepare('INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING'),
      // Its manifests, tags, blob links and references go with it (ON DELETE CASCADE).
      deleteRepo: db.prepare('DELETE FROM repositories WHERE name = ?'),
      repoHasManifests: db.prepare<[string], { one: number }>(
        'SELECT 1 AS one FROM manifests WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) LIMIT 1',
      ),
      catalog: db.prepare<[string, number], { name: string }>(
        'SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?',
      ),
      blobSize: db.prepare<[string], { size: number }>('SELECT size FROM blobs WHERE digest = ?'),
      insertBlob: db.prepare('INSERT INTO blobs (digest, size, created_at) VALUES (?, ?, ?) ON CONFLICT (digest) DO NOTHING'),
      linkedBlobSize: db.prepare<[string, string], { size: number }>(
        `SELECT b.size FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
         JOIN blobs b ON b.digest = rb.digest WHERE r.name = ? AND rb.digest = ?`,
      ),
      linkBlob: db.prepare(
        'INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      unlinkBlob: db.prepare(
        'DELETE FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = ?) AND digest = ?',
      ),
      manifest: db.prepare<[string, string], ManifestRow>(
        `SELECT m.id, m.digest, m.media_type AS mediaType, m.size, m.content FROM manifests m
         JOIN repositories r ON r.id = m.repository_id WHERE r.name = ? AND m.digest = ?`,
      ),
      manifestByTag: db.prepare<[string, string], ManifestRow>(
        `SELECT m.id, m.digest, m.media_type AS mediaType, m.size, m.content FROM tags t
         JOIN repositories r ON r.id = t.repository_id
         JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
         WHERE r.name = ? AND t.name = ?`,
      ),
      manifestExists: db.prepare<[number, string], { id: number }>(
        'SELECT id FROM manifests WHERE repository_id = ? AND digest = ?',
      ),
      insertManifest: db.prepare<[number, string, string, number, Buffer, string | null, string | null, string | null, number], never>(
        `INSERT INTO manifests (repository_id, digest, media_type, size, content, artifact_type, subject, annotations, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      insertReference: db.prepare('INSERT INTO manifest_references (manifest_id, digest, kind) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
      deleteManifest: db.prepare('DELETE FROM manifests WHERE repository_id = ? AND digest = ?'),
      upsertTag: db.prepare(
        `INSERT INTO tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
      ),
      tagDigest: db.prepare<[string, string], { digest: string }>(
        'SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = ? AND t.name = ?',
      ),
      tagsOf: db.prepare<[number, string], { name: string }>('SELECT name FROM tags WHERE repository_id = ? AND digest = ?'),
      deleteTag: db.prepare('DELETE FROM tags WHERE repository_id = ? AND name = ?'),
      deleteTagsOf: db.prepare('DELETE FROM tags WHERE repository_id = ? AND digest = ?'),
      allTags: db.prepare<[number], string>('SELECT name FROM tags WHERE repository_id = ? ORDER BY name').pluck(),
      referrers: db.prepare<[string, string, string], ReferrerRow>(
        `SELECT m.digest, m.media_type AS mediaType, m.size, m.artifact_type AS artifactType, m.annotations
         FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE r.name = ? AND m.subject = ? AND m.digest > ? ORDER BY m.digest`,
      ),
      linkedBlobSizeById: db.prepare<[number, string], { size: number }>(
        'SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = ? AND rb.digest = ?',
      ),
      blobRepositories: db.prepare<[string, string, number], { name: string; size: number }>(
        `SELECT r.name, b.size FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
         JOIN blobs b ON b.digest = rb.digest WHERE rb.digest = ? AND r.name > ? ORDER BY r.name LIMIT ?`,
      ),
      anyLinkedBlobSize: db.prepare<[string], { size: number }>(
        'SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.digest = ? LIMIT 1',
      ),
      insertUpload: db.prepare('INSERT INTO uploads (id, repository, created_at, updated_at) VALUES (?, ?, ?, ?)'),
      upload: db.prepare<[string], UploadRow>(
        'SELECT id, repository, created_at AS createdAt, updated_at AS updatedAt FROM uploads WHERE id = ?',
      ),
      touchUpload: db.prepare('UPDATE uploads SET updated_at = ? WHERE id = ?'),
      deleteUpload: db.prepare('DELETE FROM uploads WHERE id = ?'),
      dataVersion: db.prepare('PRAGMA data_version').pluck(),
      parents: db.prepare<[string, number], string>(
        `SELECT m.digest FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id
         WHERE r.digest = ? AND r.kind = 'manifest' AND m.repository_id = ? ORDER BY m.digest`,
      ).pluck(),
      staleUploads: db.prepare<[number], { id: string }>('SELECT id FROM uploads WHERE updated_at < ?'),
      uploadsOf: db.prepare<[string], string>('SELECT id FROM uploads WHERE repository = ?').pluck(),
    };
  }

  // ---- repositories ----

  async repositoryId(name: string): Promise<number | undefined> {
    return this.idOf(name);
  }

  private idOf(name: string): number | undefined {
    return this.s.repoId.get(name)?.id;
  }

  /** Creates the repository if needed. */
  async ensureRepository(name: string, now = Date.now()): Promise<number> {
    return this.ensure(name, now);
  }

  private ensure(name: string, now: number): number {
    this.s.insertRepo.run(name, now);
    return this.s.repoId.get(name)!.id;
  }

  /**
   * Removes a repository with its manifests, tags and blob links (the blobs themselves stay:
   * other repositories may hold them, and garbage collection takes the rest).
   */
  async deleteRepository(name: string): Promise<boolean> {
    this.tagWrites++;
    return this.s.deleteRepo.run(name).changes > 0;
  }

  /** Whether the repository holds at least one manifest. */
  async repositoryHasManifests(name: string): Promise<boolean> {
    return this.s.repoHasManifests.get(name) !== undefined;
  }

  async catalog(after: string, limit: number): Promise<string[]> {
    return this.s.catalog.all(after, limit).map((r) => r.name);
  }

  // ---- blobs ----

  async blobSize(digest: string): Promise<number | undefined> {
    return this.s.blobSize.get(digest)?.size;
  }

  /** Size of a blob linked into any repository (what an automatic mount may take). */
  async anyLinkedBlobSize(digest: string): Promise<number | undefined> {
    return this.s.anyLinkedBlobSize.get(digest)?.size;
  }

  /** Repositories (after `after`, sorted) that the blob is linked into, with its size. */
  async blobRepositories(digest: string, after: string, limit: number): Promise<Array<{ name: string; size: number }>> {
    return this.s.blobRepositories.all(digest, after, limit);
  }

  /** Size of a blob as seen from a repository: undefined unless linked there. */
  async linkedBlobSize(repo: string, digest: string): Promise<number | undefined> {
    return this.s.linkedBlobSize.get(repo, digest)?.size;
  }

  /** Records a blob (if new) and links it into a repository, in one transaction. */
  async addBlob(repo: string, digest: string, size: number, now = Date.now()): Promise<void> {
    this.db.transaction(() => {
      this.s.insertBlob.run(digest, size, now);
      const repoId = this.ensure(repo, now);
      this.s.linkBlob.run(repoId, digest, now);
    })();
  }

  async unlinkBlob(repo: string, digest: string): Promise<boolean> {
    return this.s.unlinkBlob.run(repo, digest).changes > 0;
  }

  /** Sizes of blobs linked into the repository, by digest; absent ones are missing. */
  async linkedBlobSizes(repoId: number | undefined, digests: string[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    if (repoId === undefined) return found;
    for (const d of digests) {
      const row = this.s.linkedBlobSizeById.get(repoId, d);
      if (row) found.set(d, row.size);
    }
    return found;
  }

  // ---- manifests and tags ----

  async manifest(repo: string, digest: string): Promise<ManifestRow | undefined> {
    return this.s.manifest.get(repo, digest);
  }

  async manifestByTag(repo: string, tag: string): Promise<ManifestRow | undefined> {
    return this.s.manifestByTag.get(repo, tag);
  }

  async tagDigest(repo: string, tag: string): Promise<string | undefined> {
    return this.s.tagDigest.get(repo, tag)?.digest;
  }

  async hasManifest(repoId: number | undefined, digest: string): Promise<boolean> {
    return repoId !== undefined && this.s.manifestExists.get(repoId, digest) !== undefined;
  }

  /** Adds a manifest (idempotently) and points the given tags at it, in one transaction. */
  async putManifest(repo: string, m: NewManifest, tags: string[], now = Date.now()): Promise<void> {
    this.tagWrites++;
    this.db.transaction(() => {
      const repoId = this.ensure(repo, now);
      this.s.insertBlob.run(m.digest, m.content.length, now);
      if (!this.s.manifestExists.get(repoId, m.digest)) {
        this.s.insertManifest.run(...manifestColumns(repoId, m, now));
        const id = this.s.manifestExists.get(repoId, m.digest)!.id;
        for (const d of m.blobs) this.s.insertReference.run(id, d, 'blob');
        for (const d of m.children) this.s.insertReference.run(id, d, 'manifest');
      }
      for (const tag of tags) this.s.upsertTag.run(repoId, tag, m.digest, now);
    })();
  }

  async tagsOf(repo: string, digest: string): Promise<string[]> {
    const repoId = this.idOf(repo);
    return repoId === undefined ? [] : this.s.tagsOf.all(repoId, digest).map((r) => r.name);
  }

  /** Removes a manifest and every tag pointing at it. */
  async deleteManifest(repo: string, digest: string): Promise<boolean> {
    this.tagWrites++;
    const repoId = this.idOf(repo);
    if (repoId === undefined) return false;
    return this.db.transaction(() => {
      this.s.deleteTagsOf.run(repoId, digest);
      return this.s.deleteManifest.run(repoId, digest).changes > 0;
    })();
  }

  /**
   * Removes a manifest and its tags only if `accept` takes the tags it has at that moment, in one
   * transaction (so a tag another process moves onto it in between keeps it). Returns the tags
   * removed, or undefined when nothing was.
   */
  async deleteManifestIf(
    repo: string,
    digest: string,
    accept: (tags: readonly string[], parents: readonly string[]) => boolean,
  ): Promise<string[] | undefined> {
    this.tagWrites++;
    const repoId = this.idOf(repo);
    if (repoId === undefined) return undefined;
    return this.db.transaction(() => {
      if (!this.s.manifestExists.get(repoId, digest)) return undefined;
      const tags = this.s.tagsOf.all(repoId, digest).map((r) => r.name);
      if (!accept(tags, this.s.parents.all(digest, repoId))) return undefined;
      this.s.deleteTagsOf.run(repoId, digest);
      this.s.deleteManifest.run(repoId, digest);
      return tags;
    }).immediate();
  }

  async deleteTag(repo: string, tag: string): Promise<boolean> {
    this.tagWrites++;
    const repoId = this.idOf(repo);
    return repoId !== undefined && this.s.deleteTag.run(repoId, tag).changes > 0;
  }

  /** Every tag of a repository, in lexical (byte) order. */
  async allTags(repoId: number): Promise<string[]> {
    return this.s.allTags.all(repoId);
  }

  async referrers(repo: string, subject: string, after = ''): Promise<ReferrerRow[]> {
    return this.s.referrers.all(repo, subject, after);
  }

  // ---- uploads ----

  async insertUpload(id: string, repo: string, now = Date.now(), updatedAt = now): Promise<void> {
    this.s.insertUpload.run(id, repo, now, updatedAt);
  }

  async upload(id: string): Promise<UploadRow | undefined> {
    return this.s.upload.get(id);
  }

  async touchUpload(id: string, now = Date.now()): Promise<void> {
    this.s.touchUpload.run(now, id);
  }

  async deleteUpload(id: string): Promise<void> {
    this.s.deleteUpload.run(id);
  }

  /** The ids of the upload sessions open on a repository. */
  async uploadsOf(repo: string): Promise<string[]> {
    return this.s.uploadsOf.all(repo);
  }

  async staleUploads(before: number): Promise<string[]> {
    return this.s.staleUploads.all(before).map((r) => r.id);
  }

  // ---- maintenance ----

  /**
   * SQLite's data version changes when another connection (another process) commits; the tag
   * writes of this one are counted beside it. Either moving means a cached tag list may be stale.
   */
  async tagsVersion(_repo: string): Promise<string> {
    return `${this.s.dataVersion.get() as number}.${this.tagWrites}`;
  }

  /** Throws when the database does not answer. */
  async ping(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  /** Empties every table (reindex rebuilds them from the store). */
  async clear(): Promise<void> {
    this.tagWrites++;
    this.db.transaction(() => {
      for (const table of ['tags', 'manifest_references', 'manifests', 'repository_blobs', 'repositories', 'blobs', 'uploads']) {
        this.db.exec(`DELETE FROM ${table}`);
      }
    })();
  }

  async insertBlob(digest: string, size: number, createdAt: number): Promise<void> {
    this.s.insertBlob.run(digest, size, createdAt);
  }
}
