/**
 * Garbage collection's side of the SQLite index: the blob state machine, holds, the collector's
 * reads, space and what verify reads. Prepared and synchronous like SqliteRegistryIndex; every
 * read-then-write transaction is IMMEDIATE, so that it holds the database's one write lock from
 * its first read and no other process's write comes between (SQLite serializes writers).
 */
import type { BlobStateRow, DeletingBlob, GcIndex, ManifestNode, ManifestUse, UsageRow } from '../contract.js';
import type { Db } from './database.js';
import { groupTags } from '../rows.js';

/**
 * A blob that no manifest of any repository references as a layer or config and that is not
 * itself a manifest of any repository (the row is `blobs`, unaliased, in every query using it).
 */
const UNREFERENCED = `NOT EXISTS (SELECT 1 FROM manifest_references r WHERE r.digest = blobs.digest AND r.kind = 'blob')
  AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = blobs.digest)`;
/** Not held by a write in flight at @now. */
const NOT_HELD = '(held_until IS NULL OR held_until <= @now)';
/** What marking takes: live, touched before @cutoff, not held, unreferenced. */
const MARKABLE = `gc_state IS NULL AND touched_at < @cutoff AND ${NOT_HELD} AND ${UNREFERENCED}`;
/** The digests of a JSON array parameter. */
const IN_JSON = (param: string) => `digest IN (SELECT value FROM json_each(${param}))`;

const BLOB_STATE_COLUMNS = `digest, size, coalesce(gc_state, 'live') AS state, touched_at AS touchedAt,
  gc_at AS stateAt, held_until AS heldUntil`;

interface NodeRow {
  digest: string;
  subject: string | null;
  touchedAt: number;
}

/** A (repository, digest) key of a page; '' before every name. */
interface RepoDigestKey {
  repository: string;
  digest: string;
}

export class SqliteGcIndex implements GcIndex {
  private readonly s;

  /**
   * `noteTagWrite` tells the registry index of this connection that a repository's manifests
   * changed (its tagsVersion counts the writes made in this process).
   */
  constructor(
    private readonly db: Db,
    private readonly noteTagWrite: () => void,
  ) {
    this.s = {
      claim: db.prepare<[{ digest: string; size: number; now: number; hold: number }], never>(
        `INSERT INTO blobs (digest, size, created_at, touched_at, held_until, holds) VALUES (@digest, @size, @now, @now, @hold, 1)
         ON CONFLICT (digest) DO UPDATE SET gc_state = NULL, gc_at = NULL, touched_at = max(touched_at, excluded.touched_at),
           holds = CASE WHEN held_until IS NULL OR held_until <= @now THEN 1 ELSE holds + 1 END,
           held_until = max(coalesce(held_until, 0), excluded.held_until)
         WHERE gc_state IS NOT 'deleting'`,
      ),
      // The last hold's release ends it; an expired hold (a writer that died) counts for nothing.
      release: db.prepare<[string], never>(
        `UPDATE blobs SET holds = max(holds - 1, 0), held_until = CASE WHEN holds <= 1 THEN NULL ELSE held_until END
         WHERE digest = ? AND held_until IS NOT NULL`,
      ),
      blobState: db.prepare<[string], BlobStateRow>(`SELECT ${BLOB_STATE_COLUMNS} FROM blobs WHERE digest = ?`),
      graphNodes: db.prepare<[number], NodeRow>(
        `SELECT m.digest, m.subject, max(m.created_at, coalesce(b.touched_at, 0)) AS touchedAt
         FROM manifests m LEFT JOIN blobs b ON b.digest = m.digest WHERE m.repository_id = ? ORDER BY m.digest`,
      ),
      graphTags: db.prepare<[number], { digest: string; name: string }>(
        'SELECT digest, name FROM tags WHERE repository_id = ? ORDER BY digest, name',
      ),
      graphChildren: db.prepare<[number], { digest: string; name: string }>(
        `SELECT m.digest, r.digest AS name FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id
         WHERE m.repository_id = ? AND r.kind = 'manifest' ORDER BY m.digest, r.digest`,
      ),
      removeUntagged: db.prepare<[{ repo: number; digest: string }], never>(
        `DELETE FROM manifests WHERE repository_id = @repo AND digest = @digest
         AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository_id = @repo AND t.digest = @digest)`,
      ),
      unreferenced: db.prepare<[{ cutoff: number; now: number; after: string; limit: number }], { digest: string; size: number }>(
        `SELECT digest, size FROM blobs WHERE ${MARKABLE} AND digest > @after ORDER BY digest LIMIT @limit`,
      ),
      mark: db.prepare<[{ cutoff: number; now: number }], { size: number }>(
        `UPDATE blobs SET gc_state = 'candidate', gc_at = @now WHERE ${MARKABLE} RETURNING size`,
      ),
      candidates: db.prepare<[string, number], string>(
        "SELECT digest FROM blobs WHERE gc_state = 'candidate' AND digest > ? ORDER BY digest LIMIT ?",
      ).pluck(),
      beginDeleting: db.prepare<[{ digests: string; now: number }], { digest: string; size: number }>(
        `UPDATE blobs SET gc_state = 'deleting', gc_at = @now
         WHERE ${IN_JSON('@digests')} AND gc_state = 'candidate' AND ${NOT_HELD} AND ${UNREFERENCED}
         RETURNING digest, size`,
      ),
      reprieve: db.prepare<[string], never>(`UPDATE blobs SET gc_state = NULL, gc_at = NULL WHERE ${IN_JSON('?')} AND gc_state = 'candidate'`),
      staleDeleting: db.prepare<[number, string, number], { digest: string; size: number }>(
        "SELECT digest, size FROM blobs WHERE gc_state = 'deleting' AND gc_at < ? AND digest > ? ORDER BY digest LIMIT ?",
      ),
      linkingRepositories: db.prepare<[string], { digest: string; name: string }>(
        `SELECT rb.digest, r.name FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
         WHERE rb.${IN_JSON('?')} ORDER BY rb.digest, r.name`,
      ),
      unlinkDeleting: db.prepare<[string], never>(
        `DELETE FROM repository_blobs WHERE digest IN
         (SELECT digest FROM blobs WHERE ${IN_JSON('?')} AND gc_state = 'deleting')`,
      ),
      removeDeleting: db.prepare<[string], never>(`DELETE FROM blobs WHERE ${IN_JSON('?')} AND gc_state = 'deleting'`),
      abortDeleting: db.prepare<[number, string], never>(
        `UPDATE blobs SET gc_state = NULL, gc_at = NULL, touched_at = max(touched_at, ?) WHERE ${IN_JSON('?')} AND gc_state = 'deleting'`,
      ),
      usage: db.prepare<[{ repo: string | null }], Omit<UsageRow, 'sharedBytes'>>(
        `WITH held (repository_id, digest) AS (
           SELECT repository_id, digest FROM manifests
           UNION
           SELECT m.repository_id, r.digest FROM manifest_references r JOIN manifests m ON m.id = r.manifest_id WHERE r.kind = 'blob'
         ),
         holders (digest, n) AS (SELECT digest, count(*) FROM held GROUP BY digest),
         sized (repository_id, size, n) AS (
           SELECT h.repository_id, b.size, hs.n FROM held h JOIN blobs b ON b.digest = h.digest JOIN holders hs ON hs.digest = h.digest
         )
         SELECT r.name AS repository,
           (SELECT count(*) FROM manifests m WHERE m.repository_id = r.id) AS manifests,
           count(s.size) AS blobs,
           coalesce(sum(s.size), 0) AS bytes,
           coalesce(sum(CASE WHEN s.n = 1 THEN s.size ELSE 0 END), 0) AS uniqueBytes
         FROM repositories r LEFT JOIN sized s ON s.repository_id = r.id
         WHERE @repo IS NULL OR r.name = @repo
         GROUP BY r.id ORDER BY r.name`,
      ),
      blobs: db.prepare<[string, number], BlobStateRow>(
        `SELECT ${BLOB_STATE_COLUMNS} FROM blobs WHERE digest > ? ORDER BY digest LIMIT ?`,
      ),
      links: db.prepare<[{ repository: string; digest: string; limit: number }], RepoDigestKey>(
        `SELECT r.name AS repository, rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id
         WHERE r.name > @repository OR (r.name = @repository AND rb.digest > @digest)
         ORDER BY r.name, rb.digest LIMIT @limit`,
      ),
      manifests: db.prepare<
        [{ repository: string; digest: string; limit: number }],
        { repository: string; digest: string; mediaType: string; size: number }
      >(
        `SELECT r.name AS repository, m.digest, m.media_type AS mediaType, m.size
         FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE r.name > @repository OR (r.name = @repository AND m.digest > @digest)
         ORDER BY r.name, m.digest LIMIT @limit`,
      ),
      tags: db.prepare<[{ repository: string; tag: string; limit: number }], { repository: string; tag: string; digest: string }>(
        `SELECT r.name AS repository, t.name AS tag, t.digest FROM tags t JOIN repositories r ON r.id = t.repository_id
         WHERE r.name > @repository OR (r.name = @repository AND t.name > @tag)
         ORDER BY r.name, t.name LIMIT @limit`,
      ),
      users: db.prepare<[string], { id: number; repository: string; digest: string }>(
        `SELECT m.id, r.name AS repository, m.digest FROM manifests m JOIN repositories r ON r.id = m.repository_id
         WHERE m.id IN (SELECT manifest_id FROM manifest_references WHERE digest = ?) ORDER BY r.name, m.digest`,
      ),
      usersTags: db.prepare<[string], { id: number; name: string }>(
        `SELECT m.id, t.name FROM manifests m JOIN tags t ON t.repository_id = m.repository_id AND t.digest = m.digest
         WHERE m.id IN (SELECT manifest_id FROM manifest_references WHERE digest = ?) ORDER BY m.id, t.name`,
      ),
      unlink: db.prepare<[string], never>('DELETE FROM repository_blobs WHERE digest = ?'),
      removeBlob: db.prepare<[string], never>('DELETE FROM blobs WHERE digest = ?'),
    };
  }

  // ---- the state machine ----

  async claimBlob(digest: string, size: number, now: number, holdUntil: number): Promise<boolean> {
    return this.s.claim.run({ digest, size, now, hold: holdUntil }).changes > 0;
  }

  async releaseBlob(digest: string): Promise<void> {
    this.s.release.run(digest);
  }

  async blobState(digest: string): Promise<BlobStateRow | undefined> {
    return this.s.blobState.get(digest);
  }

  // ---- manifests ----

  async manifestGraph(repoId: number): Promise<ManifestNode[]> {
    return this.graph(repoId);
  }

  /** Three reads (manifests, tags, children), whatever the repository's size. */
  private graph(repoId: number): ManifestNode[] {
    const tags = groupTags(this.s.graphTags.iterate(repoId));
    const children = groupTags(this.s.graphChildren.iterate(repoId));
    return this.s.graphNodes.all(repoId).map((n) => ({
      digest: n.digest,
      subject: n.subject,
      touchedAt: n.touchedAt,
      tags: tags.get(n.digest) ?? [],
      children: children.get(n.digest) ?? [],
    }));
  }

  /**
   * IMMEDIATE: the graph `decide` sees is the one the deletions apply to, since no other
   * connection writes meanwhile (and this one is synchronous here). A named manifest with tags
   * stays (the DELETE checks again), as does one not in the graph.
   */
  async removeManifestsIf(repoId: number, decide: (graph: readonly ManifestNode[]) => readonly string[]): Promise<string[]> {
    const removed = this.db.transaction(() => {
      const graph = this.graph(repoId);
      if (graph.length === 0) return [];
      const named = new Set(decide(graph));
      const gone: string[] = [];
      for (const { digest } of graph) {
        if (named.has(digest) && this.s.removeUntagged.run({ repo: repoId, digest }).changes > 0) gone.push(digest);
      }
      return gone;
    }).immediate();
    this.noteTagWrite();
    return removed;
  }

  // ---- the collector ----

  async unreferencedBlobs(cutoff: number, now: number, after: string, limit: number): Promise<Array<{ digest: string; size: number }>> {
    return this.s.unreferenced.all({ cutoff, now, after, limit });
  }

  async markCandidates(cutoff: number, now: number): Promise<{ count: number; bytes: number }> {
    let count = 0;
    let bytes = 0;
    for (const row of this.s.mark.iterate({ cutoff, now })) {
      count++;
      bytes += row.size;
    }
    return { count, bytes };
  }

  async candidates(after: string, limit: number): Promise<string[]> {
    return this.s.candidates.all(after, limit);
  }

  /**
   * The compare-and-set, in one IMMEDIATE transaction: a putManifest of another connection either
   * committed its references before it (and the UPDATE sees them) or begins after it (and sees the
   * blobs 'deleting').
   */
  async beginDeleting(digests: readonly string[], now: number): Promise<DeletingBlob[]> {
    if (digests.length === 0) return [];
    return this.db.transaction(() => {
      const list = JSON.stringify(digests);
      const rows = this.s.beginDeleting.all({ digests: list, now });
      // The others are held or referenced again: live once more, judged afresh by a later run.
      if (rows.length < digests.length) this.s.reprieve.run(list);
      return this.withRepositories(rows.sort((a, b) => compare(a.digest, b.digest)));
    }).immediate();
  }

  async staleDeleting(before: number, after: string, limit: number): Promise<DeletingBlob[]> {
    return this.db.transaction(() => this.withRepositories(this.s.staleDeleting.all(before, after, limit)))();
  }

  /** The rows, in their order, with the repositories linking each. */
  private withRepositories(rows: ReadonlyArray<{ digest: string; size: number }>): DeletingBlob[] {
    if (rows.length === 0) return [];
    const linking = groupTags(this.s.linkingRepositories.iterate(JSON.stringify(rows.map((r) => r.digest))));
    return rows.map((r) => ({ digest: r.digest, size: r.size, repositories: linking.get(r.digest) ?? [] }));
  }

  async finishDeleting(digests: readonly string[]): Promise<void> {
    if (digests.length === 0) return;
    const list = JSON.stringify(digests);
    this.db.transaction(() => {
      this.s.unlinkDeleting.run(list);
      this.s.removeDeleting.run(list);
    }).immediate();
  }

  async abortDeleting(digests: readonly string[], now: number): Promise<void> {
    if (digests.length === 0) return;
    this.s.abortDeleting.run(now, JSON.stringify(digests));
  }

  // ---- space ----

  async usage(repo?: string): Promise<UsageRow[]> {
    return this.s.usage.all({ repo: repo ?? null }).map((r) => ({ ...r, sharedBytes: r.bytes - r.uniqueBytes }));
  }

  // ---- what verify reads and repairs ----

  async blobs(after: string, limit: number): Promise<BlobStateRow[]> {
    return this.s.blobs.all(after, limit);
  }

  async links(after: RepoDigestKey, limit: number): Promise<RepoDigestKey[]> {
    return this.s.links.all({ ...after, limit });
  }

  async manifests(after: RepoDigestKey, limit: number): Promise<Array<{ repository: string; digest: string; mediaType: string; size: number }>> {
    return this.s.manifests.all({ ...after, limit });
  }

  async tags(after: { repository: string; tag: string }, limit: number): Promise<Array<{ repository: string; tag: string; digest: string }>> {
    return this.s.tags.all({ ...after, limit });
  }

  /** Two reads in one snapshot: the manifests, then their tags. */
  async usersOf(digest: string): Promise<ManifestUse[]> {
    return this.db.transaction(() => {
      const tags = new Map<number, string[]>();
      for (const { id, name } of this.s.usersTags.iterate(digest)) {
        const list = tags.get(id);
        if (list) list.push(name);
        else tags.set(id, [name]);
      }
      return this.s.users.all(digest).map((u) => ({ repository: u.repository, digest: u.digest, tags: tags.get(u.id) ?? [] }));
    })();
  }

  async manifestRepositories(digest: string): Promise<string[]> {
    return this.db
      .prepare<[string], string>(
        'SELECT r.name FROM manifests m JOIN repositories r ON r.id = m.repository_id WHERE m.digest = ? ORDER BY r.name',
      )
      .pluck()
      .all(digest);
  }

  async removeBlob(digest: string): Promise<boolean> {
    return this.db.transaction(() => {
      this.s.unlink.run(digest);
      return this.s.removeBlob.run(digest).changes > 0;
    }).immediate();
  }
}

/** Byte order of ASCII and of UTF-16 code units agree for digests; `<` is SQLite's BINARY order for them. */
function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
