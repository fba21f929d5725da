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
import { manifestColumns } from '../rows.js';
import { limitOf, type PgDb, type Querier } from './database.js';
import { writeOutbox } from './outbox.js';

const MANIFEST_COLUMNS = 'm.id, m.digest, m.media_type AS "mediaType", m.size, m.content';

/**
 * Locks a repository's row for the rest of the transaction and bumps its tags' version: every
 * tag write does this first, so that the tag writes of one repository are serialised across
 * nodes and a cached tag list anywhere sees the change. Undefined when there is no repository.
 */
async function lockForTagWrite(q: Querier, repo: string): Promise<number | undefined> {
  const row = await q.one<{ id: number }>('UPDATE repositories SET tags_version = tags_version + 1 WHERE name = $1 RETURNING id', [repo]);
  return row?.id;
}

/** Creates the repository if needed and returns its id, without locking an existing row. */
async function ensure(q: Querier, name: string, now: number): Promise<number> {
  // Bounded: the row can only vanish in between if another node deletes it at that very moment.
  for (let attempt = 0; attempt < 5; attempt++) {
    const inserted = await q.one<{ id: number }>(
      'INSERT INTO repositories (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING RETURNING id',
      [name, now],
    );
    if (inserted) return inserted.id;
    const existing = await q.one<{ id: number }>('SELECT id FROM repositories WHERE name = $1', [name]);
    if (existing) return existing.id;
  }
  throw new Error(`the repository ${name} was deleted again and again while it was being created`);
}

/** What a blob row of `blobs` has when the collector is deleting it (it then reads as absent). */
const NOT_DELETING = "b.gc_state IS DISTINCT FROM 'deleting'";

/**
 * Takes back the deletion candidates among `digests` (live again, touched at `now`). Their rows
 * are locked in digest order first, as every locking statement on blobs does, so that two
 * writers taking back the same blobs wait for each other instead of deadlocking; a candidate
 * that beginDeleting has meanwhile made 'deleting' is no longer one when the lock is granted and
 * stays as it is.
 */
async function takeBack(q: Querier, digests: readonly string[], now: number): Promise<void> {
  await q.run(
    `WITH locked AS (
       SELECT digest FROM blobs WHERE digest = ANY($1::text[]) AND gc_state = 'candidate' ORDER BY digest FOR NO KEY UPDATE
     )
     UPDATE blobs b SET gc_state = NULL, gc_at = NULL, touched_at = GREATEST(b.touched_at, $2) FROM locked WHERE b.digest = locked.digest`,
    [digests, now],
  );
}

/** Distinct values in their first order. */
function distinct(values: readonly string[]): string[] {
  return [...new Set(values)];
}

/**
 * The checks of a pushed manifest (putManifest with checkReferences), inside its transaction and
 * with the repository's row locked: every blob linked into the repository and not being deleted,
 * every child a manifest of the repository. The referenced blob rows are locked FOR SHARE first
 * (in digest order), which orders this transaction against beginDeleting's FOR UPDATE: either the
 * collector's compare-and-set sees this manifest's references committed, or this sees the blob
 * 'deleting' and refuses. Candidates are taken back. Throws ManifestReferencesError.
 */
async function checkReferences(q: Querier, repoId: number, m: NewManifest, now: number, external: readonly string[]): Promise<void> {
  const blobs = distinct(m.blobs).filter((d) => !external.includes(d));
  const children = distinct(m.children);
  const states = blobs.length > 0 ? await lockReferencedBlobs(q, blobs, now) : new Map<string, string | null>();
  const linked = await existing(q, 'SELECT digest FROM repository_blobs WHERE repository_id = $1 AND digest = ANY($2::text[])', repoId, blobs);
  const known = await existing(q, 'SELECT digest FROM manifests WHERE repository_id = $1 AND digest = ANY($2::text[])', repoId, children);
  const problems = [
    ...blobs
      .filter((d) => !linked.has(d) || !states.has(d) || states.get(d) === 'deleting')
      .map((digest) => ({ digest, reason: 'blob unknown to repository' })),
    ...children.filter((d) => !known.has(d)).map((digest) => ({ digest, reason: 'manifest unknown to repository' })),
  ];
  if (problems.length > 0) throw new ManifestReferencesError(problems);
}

/**
 * Takes the candidates among the blobs back, then locks every row FOR SHARE, in digest order;
 * returns their states. The take-back comes first so that two pushes of the same candidate do
 * not both hold it FOR SHARE and then both wait to update it (a deadlock); only a candidate
 * marked in between is taken back under the shared lock (a deadlock then is retried by `tx`).
 */
async function lockReferencedBlobs(q: Querier, blobs: readonly string[], now: number): Promise<Map<string, string | null>> {
  await takeBack(q, blobs, now);
  const rows = await q.rows<{ digest: string; gc_state: string | null }>(
    'SELECT digest, gc_state FROM blobs WHERE digest = ANY($1::text[]) ORDER BY digest FOR SHARE',
    [blobs],
  );
  const late = rows.filter((r) => r.gc_state === 'candidate').map((r) => r.digest);
  if (late.length > 0) await takeBack(q, late, now);
  return new Map(rows.map((r) => [r.digest, r.gc_state === 'candidate' ? null : r.gc_state]));
}

/** Which of `digests` the query ($1 the repository, $2 the digests) finds. */
async function existing(q: Querier, sql: string, repoId: number, digests: readonly string[]): Promise<Set<string>> {
  if (digests.length === 0) return new Set();
  return new Set((await q.rows<{ digest: string }>(sql, [repoId, digests])).map((r) => r.digest));
}

/**
 * Records a manifest's own blob row, or touches it (its holds are the writers' to release). A
 * checked push takes a candidate back and refuses a blob being deleted (BlobDeletingError); an
 * unchecked write (reindex) leaves a deletion in progress alone.
 */
async function recordManifestBlob(q: Querier, m: NewManifest, now: number, checked: boolean): Promise<void> {
  const params = [m.digest, m.content.length, now];
  if (!checked) {
    await q.run(
      `INSERT INTO blobs (digest, size, created_at, touched_at) VALUES ($1, $2, $3, $3)
       ON CONFLICT (digest) DO UPDATE SET touched_at = GREATEST(blobs.touched_at, EXCLUDED.touched_at),
         gc_state = NULLIF(blobs.gc_state, 'candidate'),
         gc_at = CASE WHEN blobs.gc_state = 'deleting' THEN blobs.gc_at END`,
      params,
    );
    return;
  }
  const row = await q.one(
    `INSERT INTO blobs (digest, size, created_at, touched_at) VALUES ($1, $2, $3, $3)
     ON CONFLICT (digest) DO UPDATE SET touched_at = GREATEST(blobs.touched_at, EXCLUDED.touched_at), gc_state = NULL, gc_at = NULL
     WHERE blobs.gc_state IS DISTINCT FROM 'deleting' RETURNING 1`,
    params,
  );
  if (!row) throw new BlobDeletingError(m.digest);
}

/** A foreign key violation: a repository deleted by another node between finding it and linking to it. */
const FOREIGN_KEY_VIOLATION = '23503';

/** The PostgreSQL index: repositories, blobs and their links, manifests, tags, references and upload sessions. */
export class PostgresRegistryIndex implements RegistryIndex {
  constructor(private readonly db: PgDb) {}

  // ---- repositories ----

  async repositoryId(name: string): Promise<number | undefined> {
    return (await this.db.one<{ id: number }>('SELECT id FROM repositories WHERE name = $1', [name]))?.id;
  }

  async ensureRepository(name: string, now = Date.now()): Promise<number> {
    return ensure(this.db, name, now);
  }

  /**
   * Its manifests, tags, blob links and references go with it (ON DELETE CASCADE); the blobs
   * stay. The removals' count moves first, so that it has moved by the time the row is gone.
   */
  async deleteRepository(name: string): Promise<boolean> {
    return this.db.tx(async (q) => {
      await q.run("SELECT nextval('repository_removals')");
      return (await q.run('DELETE FROM repositories WHERE name = $1', [name])) > 0;
    });
  }

  async repositoryHasManifests(name: string): Promise<boolean> {
    const row = await this.db.one(
      'SELECT 1 FROM manifests WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) LIMIT 1',
      [name],
    );
    return row !== undefined;
  }

  async catalog(after: string, limit: number): Promise<string[]> {
    const rows = await this.db.rows<{ name: string }>('SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2', [
      after,
      limitOf(limit),
    ]);
    return rows.map((r) => r.name);
  }

  // ---- blobs ----

  async blobSize(digest: string): Promise<number | undefined> {
    return (await this.db.one<{ size: number }>('SELECT size FROM blobs WHERE digest = $1', [digest]))?.size;
  }

  async anyLinkedBlobSize(digest: string): Promise<number | undefined> {
    const row = await this.db.one<{ size: number }>(
      `SELECT b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest WHERE rb.digest = $1 AND ${NOT_DELETING} LIMIT 1`,
      [digest],
    );
    return row?.size;
  }

  async blobRepositories(digest: string, after: string, limit: number): Promise<Array<{ name: string; size: number }>> {
    return this.db.rows<{ name: string; size: number }>(
      `SELECT r.name, b.size FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
       JOIN blobs b ON b.digest = rb.digest WHERE rb.digest = $1 AND ${NOT_DELETING} AND r.name > $2 ORDER BY r.name LIMIT $3`,
      [digest, after, limitOf(limit)],
    );
  }

  /**
   * One read for a live blob (every blob HEAD and GET). A candidate is taken back by a second
   * statement, which waits for a compare-and-set in progress: once the blob is 'deleting' it
   * reads as absent.
   */
  async linkedBlobSize(repo: string, digest: string, now = Date.now()): Promise<number | undefined> {
    const row = await this.db.one<{ size: number; gc_state: string | null }>(
      `SELECT b.size, b.gc_state FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
       JOIN blobs b ON b.digest = rb.digest WHERE r.name = $1 AND rb.digest = $2`,
      [repo, digest],
    );
    if (!row || row.gc_state === 'deleting') return undefined;
    if (row.gc_state === null) return row.size;
    const taken = await this.db.one<{ size: number }>(
      `UPDATE blobs b SET gc_state = NULL, gc_at = NULL, touched_at = GREATEST(b.touched_at, $2) WHERE b.digest = $1 AND ${NOT_DELETING} RETURNING b.size`,
      [digest, now],
    );
    return taken?.size;
  }

  /**
   * The blob row's write is one conditional upsert: it locks the row, so that it is ordered
   * against the collector's compare-and-set, and writes nothing to a blob being deleted.
   */
  async addBlob(repo: string, digest: string, size: number, now = Date.now(), events?: readonly string[]): Promise<void> {
    await this.db.tx(async (q) => {
      const row = await q.one(
        `INSERT INTO blobs (digest, size, created_at, touched_at) VALUES ($1, $2, $3, $3)
         ON CONFLICT (digest) DO UPDATE SET gc_state = NULL, gc_at = NULL, touched_at = GREATEST(blobs.touched_at, EXCLUDED.touched_at)
         WHERE blobs.gc_state IS DISTINCT FROM 'deleting' RETURNING 1`,
        [digest, size, now],
      );
      if (!row) throw new BlobDeletingError(digest);
      const repoId = await ensure(q, repo, now);
      // A link made again counts as a new one.
      await q.run(
        `INSERT INTO repository_blobs (repository_id, digest, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (repository_id, digest) DO UPDATE SET created_at = EXCLUDED.created_at`,
        [repoId, digest, now],
      );
      await writeOutbox(q, events, now);
    }, [FOREIGN_KEY_VIOLATION]);
  }

  async unlinkBlob(repo: string, digest: string, events?: readonly string[]): Promise<boolean> {
    return this.db.tx(async (q) => {
      const changed = await q.run(
        'DELETE FROM repository_blobs WHERE repository_id = (SELECT id FROM repositories WHERE name = $1) AND digest = $2',
        [repo, digest],
      );
      if (changed > 0) await writeOutbox(q, events, Date.now());
      return changed > 0;
    });
  }

  async linkedBlobSizes(repoId: number | undefined, digests: string[]): Promise<Map<string, number>> {
    const found = new Map<string, number>();
    if (repoId === undefined || digests.length === 0) return found;
    const rows = await this.db.rows<{ digest: string; size: number }>(
      `SELECT b.digest, b.size FROM repository_blobs rb JOIN blobs b ON b.digest = rb.digest
       WHERE rb.repository_id = $1 AND rb.digest = ANY($2::text[]) AND ${NOT_DELETING}`,
      [repoId, [...new Set(digests)]],
    );
    for (const r of rows) found.set(r.digest, r.size);
    return found;
  }

  /**
   * Records a blob without linking it (reindex, index copy), created at `createdAt` (which may come
   * from the store's file times) but touched at `touchedAt` (default now): the collector's grace
   * window runs from when the index learnt of it, never from a file's time.
   */
  async insertBlob(digest: string, size: number, createdAt: number, touchedAt = Date.now()): Promise<void> {
    await this.db.run('INSERT INTO blobs (digest, size, created_at, touched_at) VALUES ($1, $2, $3, $4) ON CONFLICT (digest) DO NOTHING', [
      digest,
      size,
      createdAt,
      touchedAt,
    ]);
  }

  // ---- manifests and tags ----

  async manifest(repo: string, digest: string): Promise<ManifestRow | undefined> {
    return this.db.one<ManifestRow>(
      `SELECT ${MANIFEST_COLUMNS} FROM manifests m JOIN repositories r ON r.id = m.repository_id
       WHERE r.name = $1 AND m.digest = $2`,
      [repo, digest],
    );
  }

  async manifestByTag(repo: string, tag: string): Promise<ManifestRow | undefined> {
    return this.db.one<ManifestRow>(
      `SELECT ${MANIFEST_COLUMNS} FROM tags t
       JOIN repositories r ON r.id = t.repository_id
       JOIN manifests m ON m.repository_id = t.repository_id AND m.digest = t.digest
       WHERE r.name = $1 AND t.name = $2`,
      [repo, tag],
    );
  }

  async tagDigest(repo: string, tag: string): Promise<string | undefined> {
    const row = await this.db.one<{ digest: string }>(
      'SELECT t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id WHERE r.name = $1 AND t.name = $2',
      [repo, tag],
    );
    return row?.digest;
  }

  async hasManifest(repoId: number | undefined, digest: string): Promise<boolean> {
    if (repoId === undefined) return false;
    return (await this.db.one('SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2', [repoId, digest])) !== undefined;
  }

  /**
   * Everything in one transaction, the checks first: a refused manifest rolls back the lot (the
   * repository row included, if it was new here).
   */
  async putManifest(
    repo: string,
    m: NewManifest,
    tags: string[],
    now = Date.now(),
    options: PutManifestOptions = {},
  ): Promise<void> {
    const checked = options.checkReferences ?? false;
    await this.db.tx(async (q) => {
      // Creates the repository, or locks its row and bumps its tags' version, in one statement.
      const repoRow = await q.one<{ id: number }>(
        `INSERT INTO repositories (name, created_at) VALUES ($1, $2)
         ON CONFLICT (name) DO UPDATE SET tags_version = repositories.tags_version + 1 RETURNING id`,
        [repo, now],
      );
      const repoId = repoRow!.id;
      if (checked) await checkReferences(q, repoId, m, now, options.external ?? []);
      await recordManifestBlob(q, m, now, checked);
      const inserted = await q.one<{ id: number }>(
        `INSERT INTO manifests (repository_id, digest, media_type, size, content, artifact_type, subject, annotations, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (repository_id, digest) DO NOTHING RETURNING id`,
        manifestColumns(repoId, m, now),
      );
      // Only a new manifest gets its references: a known one keeps its row as it is.
      if (inserted) {
        const digests = [...m.blobs, ...m.children];
        const kinds = [...m.blobs.map(() => 'blob'), ...m.children.map(() => 'manifest')];
        if (digests.length > 0) {
          await q.run(
            `INSERT INTO manifest_references (manifest_id, digest, kind)
             SELECT $1, d, k FROM unnest($2::text[], $3::text[]) AS u(d, k) ON CONFLICT DO NOTHING`,
            [inserted.id, digests, kinds],
          );
        }
      }
      // Without duplicates: one statement may not update the same row twice.
      const names = [...new Set(tags)];
      if (names.length > 0) {
        await q.run(
          `INSERT INTO tags (repository_id, name, digest, updated_at) SELECT $1, t, $3, $4 FROM unnest($2::text[]) AS u(t)
           ON CONFLICT (repository_id, name) DO UPDATE SET digest = EXCLUDED.digest, updated_at = EXCLUDED.updated_at`,
          [repoId, names, m.digest, now],
        );
      }
      await writeOutbox(q, options.events, now);
    });
  }

  async tagsOf(repo: string, digest: string): Promise<string[]> {
    const rows = await this.db.rows<{ name: string }>(
      `SELECT t.name FROM tags t JOIN repositories r ON r.id = t.repository_id
       WHERE r.name = $1 AND t.digest = $2 ORDER BY t.name`,
      [repo, digest],
    );
    return rows.map((r) => r.name);
  }

  async deleteManifest(repo: string, digest: string, events?: readonly string[]): Promise<boolean> {
    return this.db.tx(async (q) => {
      const repoId = await lockForTagWrite(q, repo);
      if (repoId === undefined) return false;
      await q.run('DELETE FROM tags WHERE repository_id = $1 AND digest = $2', [repoId, digest]);
      const deleted = (await q.run('DELETE FROM manifests WHERE repository_id = $1 AND digest = $2', [repoId, digest])) > 0;
      if (deleted) await writeOutbox(q, events, Date.now());
      return deleted;
    });
  }

  /**
   * With the repository's row locked, no tag write of any node can run between reading the tags
   * and deleting them, so `accept` judges the tags as they are.
   */
  async deleteManifestIf(
    repo: string,
    digest: string,
    accept: (tags: readonly string[], parents: readonly string[]) => boolean,
    events?: readonly string[],
  ): Promise<string[] | undefined> {
    return this.db.tx(async (q) => {
      const repoId = await lockForTagWrite(q, repo);
      if (repoId === undefined) return undefined;
      if ((await q.one('SELECT 1 FROM manifests WHERE repository_id = $1 AND digest = $2', [repoId, digest])) === undefined) {
        return undefined;
      }
      const tags = (
        await q.rows<{ name: string }>('SELECT name FROM tags WHERE repository_id = $1 AND digest = $2 ORDER BY name', [repoId, digest])
      ).map((r) => r.name);
      // The repository's row is locked: no manifest that lists this one can be added meanwhile.
      const parents = (
        await q.rows<{ digest: string }>(
          `SELECT m.digest FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id
           WHERE r.digest = $1 AND r.kind = 'manifest' AND m.repository_id = $2 ORDER BY m.digest`,
          [digest, repoId],
        )
      ).map((r) => r.digest);
      if (!accept(tags, parents)) return undefined;
      await q.run('DELETE FROM tags WHERE repository_id = $1 AND digest = $2', [repoId, digest]);
      await q.run('DELETE FROM manifests WHERE repository_id = $1 AND digest = $2', [repoId, digest]);
      await writeOutbox(q, events, Date.now());
      return tags;
    });
  }

  async deleteTag(repo: string, tag: string, events?: readonly string[]): Promise<boolean> {
    return this.db.tx(async (q) => {
      const repoId = await lockForTagWrite(q, repo);
      if (repoId === undefined) return false;
      const deleted = (await q.run('DELETE FROM tags WHERE repository_id = $1 AND name = $2', [repoId, tag])) > 0;
      if (deleted) await writeOutbox(q, events, Date.now());
      return deleted;
    });
  }

  async allTags(repoId: number): Promise<string[]> {
    const rows = await this.db.rows<{ name: string }>('SELECT name FROM tags WHERE repository_id = $1 ORDER BY name', [repoId]);
    return rows.map((r) => r.name);
  }

  /**
   * The row's id with its tags' version, never the same twice: a repository created again has a
   * new id (ids are never reused), and one that does not exist has the count of removals. A
   * value coming back would let a tag list cached at it pass for current.
   */
  async tagsVersion(repo: string): Promise<string> {
    const row = await this.db.one<{ id: number | null; tags_version: number | null; removals: number; is_called: boolean }>(
      `SELECT r.id, r.tags_version, s.last_value AS removals, s.is_called
       FROM repository_removals s LEFT JOIN repositories r ON r.name = $1`,
      [repo],
    );
    if (!row) throw new Error('the sequence repository_removals is missing');
    if (row.id !== null) return `${row.id}.${row.tags_version}`;
    return `none.${row.is_called ? row.removals : 0}`;
  }

  async referrers(repo: string, subject: string, after = ''): Promise<ReferrerRow[]> {
    return this.db.rows<ReferrerRow>(
      `SELECT m.digest, m.media_type AS "mediaType", m.size, m.artifact_type AS "artifactType", m.annotations
       FROM manifests m JOIN repositories r ON r.id = m.repository_id
       WHERE r.name = $1 AND m.subject = $2 AND m.digest > $3 ORDER BY m.digest`,
      [repo, subject, after],
    );
  }

  // ---- uploads ----

  async insertUpload(id: string, repo: string, now = Date.now(), updatedAt = now): Promise<void> {
    await this.db.run('INSERT INTO uploads (id, repository, created_at, updated_at) VALUES ($1, $2, $3, $4)', [id, repo, now, updatedAt]);
  }

  async upload(id: string): Promise<UploadRow | undefined> {
    return this.db.one<UploadRow>('SELECT id, repository, created_at AS "createdAt", updated_at AS "updatedAt" FROM uploads WHERE id = $1', [id]);
  }

  async touchUpload(id: string, now = Date.now()): Promise<void> {
    await this.db.run('UPDATE uploads SET updated_at = $1 WHERE id = $2', [now, id]);
  }

  async deleteUpload(id: string): Promise<void> {
    await this.db.run('DELETE FROM uploads WHERE id = $1', [id]);
  }

  async uploadsOf(repo: string): Promise<string[]> {
    return (await this.db.rows<{ id: string }>('SELECT id FROM uploads WHERE repository = $1 ORDER BY id', [repo])).map((r) => r.id);
  }

  async staleUploads(before: number): Promise<string[]> {
    return (await this.db.rows<{ id: string }>('SELECT id FROM uploads WHERE updated_at < $1 ORDER BY id', [before])).map((r) => r.id);
  }

  // ---- maintenance ----

  async ping(): Promise<void> {
    await this.db.one('SELECT 1');
  }

  /**
   * Empties what reindex rebuilds, in one statement (with the removals' count moved on). The
   * identities are not restarted, so a repository created again gets a new id and tags version.
   */
  async clear(): Promise<void> {
    await this.db.tx(async (q) => {
      await q.run("SELECT nextval('repository_removals')");
      await q.run('TRUNCATE tags, manifest_references, manifests, repository_blobs, repositories, blobs, uploads');
    });
  }
}
