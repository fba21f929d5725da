import type { BlobStateRow, DeletingBlob, GcIndex, ManifestNode, ManifestUse, UsageRow } from '../contract.js';
import { limitOf, type PgDb } from './database.js';

/**
 * Whether no manifest of any repository needs the blob `b`: none references it as a layer or
 * config, and it is not itself a manifest of any repository.
 */
const UNREFERENCED = `NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.digest = b.digest AND r.kind = 'blob')
  AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)`;

/** What marking takes ($1 the cutoff, $2 now): live, untouched since the cutoff, not held, unreferenced. */
const MARKABLE = `b.gc_state IS NULL AND b.touched_at < $1 AND (b.held_until IS NULL OR b.held_until <= $2) AND ${UNREFERENCED}`;

const BLOB_STATE_COLUMNS = `b.digest, b.size, COALESCE(b.gc_state, 'live') AS state, b.touched_at AS "touchedAt",
  b.gc_at AS "stateAt", b.held_until AS "heldUntil"`;

/** The repositories linking the blob `b`, in byte order (names are COLLATE "C"). */
const LINKING_REPOSITORIES = `COALESCE((SELECT array_agg(p.name ORDER BY p.name) FROM repository_blobs rb
  JOIN repositories p ON p.id = rb.repository_id WHERE rb.digest = b.digest), '{}') AS repositories`;

/**
 * A repository's manifests ($1 its id) as marking sees them, in one query (so in one snapshot):
 * tags and children come from correlated subqueries over their indexes, not a query per manifest.
 */
const GRAPH = `SELECT m.digest, m.subject, GREATEST(m.created_at, COALESCE(b.touched_at, m.created_at)) AS "touchedAt",
  COALESCE((SELECT array_agg(t.name ORDER BY t.name) FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest), '{}') AS tags,
  COALESCE((SELECT array_agg(r.digest ORDER BY r.digest) FROM manifest_references r
    WHERE r.manifest_id = m.id AND r.kind = 'manifest'), '{}') AS children
  FROM manifests m LEFT JOIN blobs b ON b.digest = m.digest WHERE m.repository_id = $1 ORDER BY m.digest`;

/**
 * Garbage collection's side of the PostgreSQL index. Several nodes share it at READ COMMITTED:
 * every statement that locks blob rows locks them in digest order, and the compare-and-set
 * (beginDeleting) is a locking read followed by a separate update, so that the update's fresh
 * snapshot sees every reference committed by a push that held those rows.
 */
export class PostgresGcIndex implements GcIndex {
  constructor(private readonly db: PgDb) {}

  /** One conditional upsert: it waits for a compare-and-set holding the row, and changes nothing of a blob being deleted. */
  async claimBlob(digest: string, size: number, now: number, holdUntil: number): Promise<boolean> {
    const row = await this.db.one(
      `INSERT INTO blobs (digest, size, created_at, touched_at, held_until, holds) VALUES ($1, $2, $3, $3, $4, 1)
       ON CONFLICT (digest) DO UPDATE SET gc_state = NULL, gc_at = NULL, touched_at = GREATEST(blobs.touched_at, EXCLUDED.touched_at),
         holds = CASE WHEN blobs.held_until IS NULL OR blobs.held_until <= $3 THEN 1 ELSE blobs.holds + 1 END,
         held_until = GREATEST(blobs.held_until, EXCLUDED.held_until)
       WHERE blobs.gc_state IS DISTINCT FROM 'deleting' RETURNING 1`,
      [digest, size, now, holdUntil],
    );
    return row !== undefined;
  }

  async releaseBlob(digest: string): Promise<void> {
    // The last hold's release ends it; an expired hold (a writer that died) counts for nothing.
    await this.db.run(
      `UPDATE blobs SET holds = GREATEST(holds - 1, 0), held_until = CASE WHEN holds <= 1 THEN NULL ELSE held_until END
       WHERE digest = $1 AND held_until IS NOT NULL`,
      [digest],
    );
  }

  async blobState(digest: string): Promise<BlobStateRow | undefined> {
    return this.db.one<BlobStateRow>(`SELECT ${BLOB_STATE_COLUMNS} FROM blobs b WHERE b.digest = $1`, [digest]);
  }

  // ---- manifests ----

  async manifestGraph(repoId: number): Promise<ManifestNode[]> {
    return this.db.rows<ManifestNode>(GRAPH, [repoId]);
  }

  /**
   * The repository's row is locked first, with the tags' version bumped (as every tag write and
   * manifest write of the repository does), so none of them interleaves between reading the graph
   * and deleting. A manifest with tags is never deleted, whatever `decide` says.
   */
  async removeManifestsIf(repoId: number, decide: (graph: readonly ManifestNode[]) => readonly string[]): Promise<string[]> {
    return this.db.tx(async (q) => {
      const locked = await q.one('UPDATE repositories SET tags_version = tags_version + 1 WHERE id = $1 RETURNING id', [repoId]);
      if (!locked) return [];
      const named = [...new Set(decide(await q.rows<ManifestNode>(GRAPH, [repoId])))];
      if (named.length === 0) return [];
      const rows = await q.rows<{ digest: string }>(
        `WITH gone AS (
           DELETE FROM manifests m WHERE m.repository_id = $1 AND m.digest = ANY($2::text[])
           AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest)
           RETURNING m.digest
         )
         SELECT digest FROM gone ORDER BY digest`,
        [repoId, named],
      );
      return rows.map((r) => r.digest);
    });
  }

  // ---- marking and sweeping ----

  async unreferencedBlobs(cutoff: number, now: number, after: string, limit: number): Promise<Array<{ digest: string; size: number }>> {
    return this.db.rows<{ digest: string; size: number }>(
      `SELECT b.digest, b.size FROM blobs b WHERE ${MARKABLE} AND b.digest > $3 ORDER BY b.digest LIMIT $4`,
      [cutoff, now, after, limitOf(limit)],
    );
  }

  /**
   * One UPDATE. A push in flight that holds a row (FOR SHARE) makes it wait, and the row may then
   * be marked though just referenced: harmless, as beginDeleting checks the references again
   * (and makes such a candidate live again).
   */
  async markCandidates(cutoff: number, now: number): Promise<{ count: number; bytes: number }> {
    const row = await this.db.one<{ count: number; bytes: number }>(
      `WITH marked AS (UPDATE blobs b SET gc_state = 'candidate', gc_at = $2 WHERE ${MARKABLE} RETURNING b.size)
       SELECT count(*) AS count, COALESCE(sum(size), 0)::bigint AS bytes FROM marked`,
      [cutoff, now],
    );
    return { count: row?.count ?? 0, bytes: row?.bytes ?? 0 };
  }

  async candidates(after: string, limit: number): Promise<string[]> {
    const rows = await this.db.rows<{ digest: string }>(
      "SELECT digest FROM blobs WHERE gc_state = 'candidate' AND digest > $1 ORDER BY digest LIMIT $2",
      [after, limitOf(limit)],
    );
    return rows.map((r) => r.digest);
  }

  /**
   * Two statements, never one: the locking read waits for every push holding these rows (FOR
   * SHARE) to end, and the UPDATE after it takes a new snapshot, so it sees the references those
   * pushes committed. Folded into one UPDATE, a row that waited would be re-checked on its own
   * with the references of the old snapshot. A push that comes later locks the row after this
   * commits, sees 'deleting', and is refused.
   */
  async beginDeleting(digests: readonly string[], now: number): Promise<DeletingBlob[]> {
    if (digests.length === 0) return [];
    return this.db.tx(async (q) => {
      const locked = await q.rows<{ digest: string }>(
        "SELECT digest FROM blobs WHERE digest = ANY($1::text[]) AND gc_state = 'candidate' ORDER BY digest FOR UPDATE",
        [[...digests]],
      );
      if (locked.length === 0) return [];
      const deleting = await q.rows<DeletingBlob>(
        `WITH deleting AS (
           UPDATE blobs b SET gc_state = 'deleting', gc_at = $2
           WHERE b.digest = ANY($1::text[]) AND b.gc_state = 'candidate' AND (b.held_until IS NULL OR b.held_until <= $2) AND ${UNREFERENCED}
           RETURNING b.digest, b.size
         )
         SELECT b.digest, b.size, ${LINKING_REPOSITORIES} FROM deleting b ORDER BY b.digest`,
        [locked.map((r) => r.digest), now],
      );
      // The others are held or referenced again (a push that raced the marking): live once more,
      // to be judged afresh by a later run rather than left as candidates.
      if (deleting.length < locked.length) {
        await q.run("UPDATE blobs SET gc_state = NULL, gc_at = NULL WHERE digest = ANY($1::text[]) AND gc_state = 'candidate'", [
          locked.map((r) => r.digest),
        ]);
      }
      return deleting;
    });
  }

  async staleDeleting(before: number, after: string, limit: number): Promise<DeletingBlob[]> {
    return this.db.rows<DeletingBlob>(
      `SELECT b.digest, b.size, ${LINKING_REPOSITORIES} FROM blobs b
       WHERE b.gc_state = 'deleting' AND b.gc_at < $1 AND b.digest > $2 ORDER BY b.digest LIMIT $3`,
      [before, after, limitOf(limit)],
    );
  }

  /** The rows are locked first (no link can be added to them meanwhile), then their links go, then they do. */
  async finishDeleting(digests: readonly string[]): Promise<void> {
    if (digests.length === 0) return;
    await this.db.tx(async (q) => {
      const gone = (
        await q.rows<{ digest: string }>(
          "SELECT digest FROM blobs WHERE digest = ANY($1::text[]) AND gc_state = 'deleting' ORDER BY digest FOR UPDATE",
          [[...digests]],
        )
      ).map((r) => r.digest);
      if (gone.length === 0) return;
      await q.run('DELETE FROM repository_blobs WHERE digest = ANY($1::text[])', [gone]);
      await q.run('DELETE FROM blobs WHERE digest = ANY($1::text[])', [gone]);
    });
  }

  async abortDeleting(digests: readonly string[], now: number): Promise<void> {
    if (digests.length === 0) return;
    await this.db.run(
      "UPDATE blobs SET gc_state = NULL, gc_at = NULL, touched_at = GREATEST(touched_at, $2) WHERE digest = ANY($1::text[]) AND gc_state = 'deleting'",
      [[...digests], now],
    );
  }

  // ---- space ----

  /**
   * Set-based: the (repository, digest) pairs its manifests hold (their own bytes and their blob
   * references), sized from `blobs`, each digest once per repository; a digest is unique to a
   * repository when no other one holds it.
   */
  async usage(repo?: string): Promise<UsageRow[]> {
    const rows = await this.db.rows<Omit<UsageRow, 'sharedBytes'>>(
      `WITH held AS (
         SELECT m.repository_id, m.digest FROM manifests m
         UNION
         SELECT m.repository_id, r.digest FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id WHERE r.kind = 'blob'
       ),
       sized AS (SELECT h.repository_id, h.digest, b.size FROM held h JOIN blobs b ON b.digest = h.digest),
       holders AS (SELECT digest, count(*) AS n FROM sized GROUP BY digest)
       SELECT p.name AS repository,
         (SELECT count(*) FROM manifests m WHERE m.repository_id = p.id) AS manifests,
         count(s.digest) AS blobs,
         COALESCE(sum(s.size), 0)::bigint AS bytes,
         COALESCE(sum(s.size) FILTER (WHERE h.n = 1), 0)::bigint AS "uniqueBytes"
       FROM repositories p
       LEFT JOIN sized s ON s.repository_id = p.id
       LEFT JOIN holders h ON h.digest = s.digest
       WHERE $1::text IS NULL OR p.name = $1
       GROUP BY p.id, p.name ORDER BY p.name`,
      [repo ?? null],
    );
    return rows.map((r) => ({ ...r, sharedBytes: r.bytes - r.uniqueBytes }));
  }

  // ---- what verify reads and repairs ----

  async blobs(after: string, limit: number): Promise<BlobStateRow[]> {
    return this.db.rows<BlobStateRow>(`SELECT ${BLOB_STATE_COLUMNS} FROM blobs b WHERE b.digest > $1 ORDER BY b.digest LIMIT $2`, [
      after,
      limitOf(limit),
    ]);
  }

  async links(after: { repository: string; digest: string }, limit: number): Promise<Array<{ repository: string; digest: string }>> {
    return this.db.rows<{ repository: string; digest: string }>(
      `SELECT p.name AS repository, rb.digest FROM repository_blobs rb JOIN repositories p ON p.id = rb.repository_id
       WHERE (p.name, rb.digest) > ($1, $2) ORDER BY p.name, rb.digest LIMIT $3`,
      [after.repository, after.digest, limitOf(limit)],
    );
  }

  async manifests(
    after: { repository: string; digest: string },
    limit: number,
  ): Promise<Array<{ repository: string; digest: string; mediaType: string; size: number }>> {
    return this.db.rows<{ repository: string; digest: string; mediaType: string; size: number }>(
      `SELECT p.name AS repository, m.digest, m.media_type AS "mediaType", m.size FROM manifests m JOIN repositories p ON p.id = m.repository_id
       WHERE (p.name, m.digest) > ($1, $2) ORDER BY p.name, m.digest LIMIT $3`,
      [after.repository, after.digest, limitOf(limit)],
    );
  }

  async tags(after: { repository: string; tag: string }, limit: number): Promise<Array<{ repository: string; tag: string; digest: string }>> {
    return this.db.rows<{ repository: string; tag: string; digest: string }>(
      `SELECT p.name AS repository, t.name AS tag, t.digest FROM tags t JOIN repositories p ON p.id = t.repository_id
       WHERE (p.name, t.name) > ($1, $2) ORDER BY p.name, t.name LIMIT $3`,
      [after.repository, after.tag, limitOf(limit)],
    );
  }

  async usersOf(digest: string): Promise<ManifestUse[]> {
    return this.db.rows<ManifestUse>(
      `SELECT p.name AS repository, m.digest,
         COALESCE((SELECT array_agg(t.name ORDER BY t.name) FROM tags t WHERE t.repository_id = m.repository_id AND t.digest = m.digest), '{}') AS tags
       FROM manifests m JOIN repositories p ON p.id = m.repository_id
       WHERE m.id IN (SELECT manifest_id FROM manifest_references WHERE digest = $1)
       ORDER BY p.name, m.digest`,
      [digest],
    );
  }

  async manifestRepositories(digest: string): Promise<string[]> {
    const rows = await this.db.rows<{ name: string }>(
      'SELECT r.name FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE m.digest = $1 ORDER BY r.name',
      [digest],
    );
    return rows.map((r) => r.name);
  }

  async removeBlob(digest: string): Promise<boolean> {
    return this.db.tx(async (q) => {
      await q.run('DELETE FROM repository_blobs WHERE digest = $1', [digest]);
      return (await q.run('DELETE FROM blobs WHERE digest = $1', [digest])) > 0;
    });
  }
}

