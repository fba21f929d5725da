import {
  BlobDeletingError,
  ManifestReferencesError,
  type ManifestRow,
  type NewManifest,
  type PutManifestOptions,
  type ReferrerRow,
  type RegistryIndex,
  type UploadRow,
} from '../contract.js';
import type { Db } from './database.js';
import { manifestColumns } from '../rows.js';
import { outboxWriter } from './outbox.js';

/** What a blob row of `blobs b` has unless the collector is deleting it (it then reads as absent). */
const NOT_DELETING = "b.gc_state IS NOT 'deleting'";

/** Distinct values in their first order. */
function distinct(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/**
 * The SQLite index: repositories, blobs and their links, manifests, tags,
 * references and upload sessions. Every method is synchronous and short;
 * callers do their I/O first and then call in here.
 */
export class SqliteRegistryIndex implements RegistryIndex {
  private readonly s;
  /** Tag writes through this connection (see tagsVersion). */
  private tagWrites = 0;

  /** Writes events into the outbox, inside the transaction of the change. */
  private readonly outbox;

  constructor(readonly db: Db) {
    this.outbox = outboxWriter(db);
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
      insertBlob: db.prepare<[{ digest: string; size: number; at: number; touched: number }], never>(
        'INSERT INTO blobs (digest, size, created_at, touched_at) VALUES (@digest, @size, @at, @touched) ON CONFLICT (digest) DO NOTHING',
      ),
      // Records a blob, or makes it live (a candidate taken back) and touched; no change at all
      // (0 changes) to a blob being deleted.
      liveBlob: db.prepare<[{ digest: string; size: number; now: number }], never>(
        `INSERT INTO blobs (digest, size, created_at, touched_at) VALUES (@digest, @size, @now, @now)
         ON CONFLICT (digest) DO UPDATE SET gc_state = NULL, gc_at = NULL, touched_at = max(touched_at, excluded.touched_at)
         WHERE gc_state IS NOT 'deleting'`,
      ),
      // The same for an unchecked manifest write (reindex, index copy), which leaves a deletion in progress as it is.
      touchBlob: db.prepare<[{ digest: string; size: number; now: number }], never>(
        `INSERT INTO blobs (digest, size, created_at, touched_at) VALUES (@digest, @size, @now, @now)
         ON CONFLICT (digest) DO UPDATE SET touched_at = max(touched_at, excluded.touched_at),
           gc_state = nullif(gc_state, 'candidate'), gc_at = CASE WHEN gc_state = 'deleting' THEN gc_at END`,
      ),
      takeBack: db.prepare<[number, string], never>(
        `UPDATE blobs SET gc_state = NULL, gc_at = NULL, touched_at = max(touched_at, ?)
         WHERE digest IN (SELECT value FROM json_each(?)) AND gc_state = 'candidate'`,
      ),
      linkedBlobSize: db.prepare<[string, string], { size: number; state: string | null }>(
        `SELECT b.size, b.gc_state AS state FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
         JOIN blobs b ON b.digest = rb.digest WHERE r.name = ? AND rb.digest = ?`,
      ),
      // A link made again counts as a new one.
      linkBlob: db.prepare<[number, string, number], never>(
        `INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES (?, ?, ?)
         ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = excluded.created_at`,
      ),
      linkedState: db.prepare<[number, string], { state: string | null }>(
        'SELECT b.gc_state AS state FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.repository_id = ? AND rb.digest = ?',
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
        `SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
         WHERE rb.repository_id = ? AND rb.digest = ? AND ${NOT_DELETING}`,
      ),
      blobRepositories: db.prepare<[string, string, number], { name: string; size: number }>(
        `SELECT r.name, b.size FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
         JOIN blobs b ON b.digest = rb.digest WHERE rb.digest = ? AND ${NOT_DELETING} AND r.name > ? ORDER BY r.name LIMIT ?`,
      ),
      anyLinkedBlobSize: db.prepare<[string], { size: number }>(
        `SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.digest = ? AND ${NOT_DELETING} LIMIT 1`,
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

  /** Size of a blob linked into any repository (what an automatic mount may take), unless being deleted. */
  async anyLinkedBlobSize(digest: string): Promise<number | undefined> {
    return this.s.anyLinkedBlobSize.get(digest)?.size;
  }

  /** Repositories (after `after`, sorted) that the blob is linked into, with its size; none while it is being deleted. */
  async blobRepositories(digest: string, after: string, limit: number): Promise<Array<{ name: string; size: number }>> {
    return this.s.blobRepositories.all(digest, after, limit);
  }

  /**
   * Size of a blob as seen from a repository: undefined unless linked there, or while it is being
   * deleted. One read for a live blob (every blob HEAD and GET); a candidate is taken back in a
   * write transaction that reads it again, since another process may have begun deleting it.
   */
  async linkedBlobSize(repo: string, digest: string, now = Date.now()): Promise<number | undefined> {
    const row = this.s.linkedBlobSize.get(repo, digest);
    if (row === undefined || row.state === null) return row?.size;
    if (row.state === 'deleting') return undefined;
    return this.db.transaction(() => {
      const again = this.s.linkedBlobSize.get(repo, digest);
      if (again === undefined || again.state === 'deleting') return undefined;
      this.s.takeBack.run(now, JSON.stringify([digest]));
      return again.size;
    }).immediate();
  }

  /**
   * Records a blob (if new) or makes it live and touched, and links it into a repository, in one
   * transaction; a blob being deleted is refused (BlobDeletingError) before anything is written.
   */
  async addBlob(repo: string, digest: string, size: number, now = Date.now(), events?: readonly string[]): Promise<void> {
    this.db.transaction(() => {
      if (this.s.liveBlob.run({ digest, size, now }).changes === 0) throw new BlobDeletingError(digest);
      const repoId = this.ensure(repo, now);
      this.s.linkBlob.run(repoId, digest, now);
      this.outbox(events, now);
    })();
  }

  async unlinkBlob(repo: string, digest: string, events?: readonly string[]): Promise<boolean> {
    return this.db.transaction(() => {
      const unlinked = this.s.unlinkBlob.run(repo, digest).changes > 0;
      if (unlinked) this.outbox(events, Date.now());
      return unlinked;
    })();
  }

  /** Sizes of blobs linked into the repository, by digest; absent ones (and those being deleted) are missing. */
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

  /**
   * Adds a manifest (idempotently) and points the given tags at it, in one transaction. A checked
   * push reads before it writes, so its transaction takes the write lock from the start
   * (IMMEDIATE): no other connection's compare-and-set (GcIndex.beginDeleting) can come between
   * its checks and its references.
   */
  async putManifest(
    repo: string,
    m: NewManifest,
    tags: string[],
    now = Date.now(),
    options: PutManifestOptions = {},
  ): Promise<void> {
    this.tagWrites++;
    const checked = options.checkReferences ?? false;
    const write = this.db.transaction(() => {
      if (checked) this.checkReferences(repo, m, now, options.external ?? []);
      const repoId = this.ensure(repo, now);
      this.recordManifestBlob(m, now, checked);
      if (!this.s.manifestExists.get(repoId, m.digest)) {
        this.s.insertManifest.run(...manifestColumns(repoId, m, now));
        const id = this.s.manifestExists.get(repoId, m.digest)!.id;
        for (const d of m.blobs) this.s.insertReference.run(id, d, 'blob');
        for (const d of m.children) this.s.insertReference.run(id, d, 'manifest');
      }
      for (const tag of tags) this.s.upsertTag.run(repoId, tag, m.digest, now);
      this.outbox(options.events, now);
    });
    if (checked) write.immediate();
    else write();
  }

  /**
   * The checks of a pushed manifest, before anything of it is written: every blob linked into the
   * repository and not being deleted, every child a manifest of the repository (throws
   * ManifestReferencesError naming each problem, blobs first). The referenced candidates are then
   * taken back.
   */
  private checkReferences(repo: string, m: NewManifest, now: number, external: readonly string[]): void {
    const repoId = this.idOf(repo);
    const blobs = distinct(m.blobs).filter((d) => !external.includes(d));
    const problems = [
      ...blobs
        .filter((d) => repoId === undefined || !this.usableIn(repoId, d))
        .map((digest) => ({ digest, reason: 'blob unknown to repository' })),
      ...distinct(m.children)
        .filter((d) => repoId === undefined || this.s.manifestExists.get(repoId, d) === undefined)
        .map((digest) => ({ digest, reason: 'manifest unknown to repository' })),
    ];
    if (problems.length > 0) throw new ManifestReferencesError(problems);
    if (blobs.length > 0) this.s.takeBack.run(now, JSON.stringify(blobs));
  }

  /** Whether a blob is linked into the repository and not being deleted. */
  private usableIn(repoId: number, digest: string): boolean {
    const row = this.s.linkedState.get(repoId, digest);
    return row !== undefined && row.state !== 'deleting';
  }

  /**
   * Records a manifest's own blob row, or touches it (its holds are the writers' to release). A
   * checked push takes a candidate back and refuses a blob being deleted (BlobDeletingError); an
   * unchecked write leaves a deletion in progress alone.
   */
  private recordManifestBlob(m: NewManifest, now: number, checked: boolean): void {
    const row = { digest: m.digest, size: m.content.length, now };
    if (!checked) this.s.touchBlob.run(row);
    else if (this.s.liveBlob.run(row).changes === 0) throw new BlobDeletingError(m.digest);
  }

  async tagsOf(repo: string, digest: string): Promise<string[]> {
    const repoId = this.idOf(repo);
    return repoId === undefined ? [] : this.s.tagsOf.all(repoId, digest).map((r) => r.name);
  }

  /** Removes a manifest and every tag pointing at it. */
  async deleteManifest(repo: string, digest: string, events?: readonly string[]): Promise<boolean> {
    this.tagWrites++;
    const repoId = this.idOf(repo);
    if (repoId === undefined) return false;
    return this.db.transaction(() => {
      this.s.deleteTagsOf.run(repoId, digest);
      const deleted = this.s.deleteManifest.run(repoId, digest).changes > 0;
      if (deleted) this.outbox(events, Date.now());
      return deleted;
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
    events?: readonly string[],
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
      this.outbox(events, Date.now());
      return tags;
    }).immediate();
  }

  async deleteTag(repo: string, tag: string, events?: readonly string[]): Promise<boolean> {
    this.tagWrites++;
    const repoId = this.idOf(repo);
    if (repoId === undefined) return false;
    return this.db.transaction(() => {
      const deleted = this.s.deleteTag.run(repoId, tag).changes > 0;
      if (deleted) this.outbox(events, Date.now());
      return deleted;
    })();
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

  /**
   * Counts a tag write made through this connection by another part of the index (GcIndex's
   * removals), so that tagsVersion moves.
   */
  noteTagWrite(): void {
    this.tagWrites++;
  }

  /**
   * Records a blob without linking it (reindex, index copy), created at `createdAt` (which may come
   * from the store's file times) but touched at `touchedAt` (default now): the collector's grace
   * window runs from when the index learnt of it, never from a file's time.
   */
  async insertBlob(digest: string, size: number, createdAt: number, touchedAt = Date.now()): Promise<void> {
    this.s.insertBlob.run({ digest, size, at: createdAt, touched: touchedAt });
  }
}
