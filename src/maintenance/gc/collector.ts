/**
 * Online garbage collection: what no image needs goes from the index and the store while the
 * registry serves, on one node or several.
 *
 * A run, under the `job:gc` lock (one node at a time; `ocireg gc` beside an SQLite registry may
 * overlap a scheduled run, which the index's compare-and-set makes harmless):
 * 1. finishes the deletions a run cut short left behind (blobs 'deleting' for minutes);
 * 2. with `deleteUntagged`, removes from each repository, under its write lock, the manifests
 *    that no tag reaches (see mark.ts), pushed before the grace window;
 * 3. marks, in one transaction, every blob that no manifest of any repository references, that
 *    is not a manifest, is not held by a write in flight, and was not completed, linked or used
 *    within the grace window: these become candidates;
 * 4. sweeps the candidates in batches: the index's compare-and-set moves those still
 *    unreferenced to 'deleting' (a HEAD, mount, upload or manifest push since the marking took
 *    the others back), the store deletes their bytes, then their links, and the index forgets them.
 *
 * Times are the index's (completion, linking, push), never the store's modification times. A
 * store that will not delete a blob keeps it (it becomes live again and the next run retries).
 */
import { Digest } from '../../oci/digest.js';
import { parseManifest } from '../../oci/manifest.js';
import type { DeletingBlob, GcIndex } from '../../index/contract.js';
import { keysetPages } from '../../index/pages.js';
import type { Registry } from '../../registry/registry.js';
import type { BlobStore } from '../../storage/blob-store.js';
import { keys } from '../../storage/keys.js';

export interface GcOptions {
  /** The grace window (ms): content more recent than this is kept. */
  readonly delayMs: number;
  /** Report what would go, change nothing. */
  readonly dryRun?: boolean;
  /** Also remove the manifests that no tag reaches (and referrers whose subject is gone). */
  readonly deleteUntagged?: boolean;
  /** Blobs per compare-and-set and per store request (S3 takes 1,000 keys per DeleteObjects). */
  readonly batch?: number;
  readonly now?: () => number;
  readonly signal?: AbortSignal;
}

export interface GcReport {
  readonly dryRun: boolean;
  /** Repositories looked through for untagged manifests (0 without deleteUntagged). */
  readonly repositories: number;
  /** Manifests removed (or that would be). */
  readonly manifests: number;
  /** Blobs removed (or that would be), with their bytes. */
  readonly blobs: number;
  readonly bytes: number;
  /** Candidates that were used again before they could be deleted, and kept. */
  readonly reprieved: number;
  /** Blobs the store would not delete (kept; the next run tries again). */
  readonly failed: number;
  readonly durationMs: number;
}

/** A deletion older than this was abandoned by its run (a crash, a lost node): the next run finishes it. */
export const STALE_DELETING_MS = 5 * 60_000;

const DEFAULT_BATCH = 1000;
/** Repositories read per catalog page when untagged manifests are looked for. */
const CATALOG_PAGE = 500;
/** Bounds on the passes of one run (pages of abandoned deletions and of candidates). */
const MAX_PAGES = 1_000_000;

export class GarbageCollector {
  private readonly gc: GcIndex;
  private readonly store: BlobStore;

  constructor(private readonly registry: Registry) {
    this.gc = registry.database.gc;
    this.store = registry.store;
  }

  async run(options: GcOptions): Promise<GcReport> {
    const started = Date.now();
    const now = options.now ?? Date.now;
    const dryRun = options.dryRun ?? false;
    const batch = Math.max(1, options.batch ?? DEFAULT_BATCH);
    const cutoff = now() - options.delayMs;
    const tally = { repositories: 0, manifests: 0, blobs: 0, bytes: 0, reprieved: 0, failed: 0 };

    if (!dryRun) await this.finishAbandoned(now() - STALE_DELETING_MS, batch, tally, options.signal);
    const removed = options.deleteUntagged ? await this.removeUntagged(cutoff, dryRun, tally, options.signal) : [];
    if (dryRun) {
      await this.countUnreferenced(cutoff, now(), batch, tally, options.signal);
      await this.countFreedBy(removed, cutoff, now(), tally, options.signal);
    } else {
      await this.markAndSweep(cutoff, now, batch, tally, options.signal);
    }

    return { dryRun, ...tally, durationMs: Date.now() - started };
  }

  /** Step 1: deletions that a run cut short left 'deleting'. */
  private async finishAbandoned(before: number, batch: number, tally: Tally, signal?: AbortSignal): Promise<void> {
    let after = '';
    for (let page = 0; page < MAX_PAGES; page++) {
      signal?.throwIfAborted();
      const rows = await this.gc.staleDeleting(before, after, batch);
      if (rows.length === 0) return;
      await this.delete(rows, tally);
      after = rows[rows.length - 1]!.digest;
    }
  }

  /**
   * Step 2: the manifests no tag reaches, repository by repository. Returns those a dry run would
   * remove (a real run forgets them: marking then finds what they held alone).
   */
  private async removeUntagged(cutoff: number, dryRun: boolean, tally: Tally, signal?: AbortSignal): Promise<ManifestKey[]> {
    const wouldGo: ManifestKey[] = [];
    const repositories = keysetPages((after: string, limit) => this.registry.index.catalog(after, limit), '', (name) => name, CATALOG_PAGE);
    for await (const repo of repositories) {
      signal?.throwIfAborted();
      tally.repositories++;
      const digests = await this.registry.manifests.removeUnreachable(repo, cutoff, this.gc, dryRun);
      tally.manifests += digests.length;
      if (dryRun) for (const digest of digests) wouldGo.push({ repo, digest });
    }
    return wouldGo;
  }

  /**
   * A dry run's count of what the manifests it would remove hold alone: their own bytes and the
   * blobs they reference, when nothing else uses them (no other manifest references them, no
   * other repository holds them as a manifest) and marking would take them (live, not held,
   * untouched within the window). What one real run then removes.
   */
  private async countFreedBy(manifests: readonly ManifestKey[], cutoff: number, now: number, tally: Tally, signal?: AbortSignal): Promise<void> {
    if (manifests.length === 0) return;
    const going = new Set(manifests.map((m) => `${m.repo}\u0000${m.digest}`));
    const reposOf = new Map<string, Set<string>>();
    for (const m of manifests) {
      const repos = reposOf.get(m.digest) ?? new Set<string>();
      repos.add(m.repo);
      reposOf.set(m.digest, repos);
    }
    const digests = new Set<string>(reposOf.keys());
    for (const m of manifests) {
      const row = await this.registry.index.manifest(m.repo, m.digest);
      if (row) for (const d of referencedBlobs(row.content, row.mediaType)) digests.add(d);
    }
    for (const digest of digests) {
      signal?.throwIfAborted();
      const state = await this.gc.blobState(digest);
      if (!state || state.state !== 'live' || state.touchedAt >= cutoff || (state.heldUntil !== null && state.heldUntil > now)) continue;
      const users = await this.gc.usersOf(digest);
      if (users.some((u) => !going.has(`${u.repository}\u0000${u.digest}`))) continue;
      const holders = await this.gc.manifestRepositories(digest);
      if (holders.some((repo) => !reposOf.get(digest)?.has(repo))) continue;
      tally.blobs++;
      tally.bytes += state.size;
    }
  }

  /** A dry run's step 3 and 4: what marking would take now (before any manifest is really removed). */
  private async countUnreferenced(cutoff: number, now: number, batch: number, tally: Tally, signal?: AbortSignal): Promise<void> {
    let after = '';
    for (let page = 0; page < MAX_PAGES; page++) {
      signal?.throwIfAborted();
      const rows = await this.gc.unreferencedBlobs(cutoff, now, after, batch);
      for (const r of rows) {
        tally.blobs++;
        tally.bytes += r.size;
      }
      if (rows.length < batch) return;
      after = rows[rows.length - 1]!.digest;
    }
  }

  /** Steps 3 and 4. */
  private async markAndSweep(cutoff: number, now: () => number, batch: number, tally: Tally, signal?: AbortSignal): Promise<void> {
    await this.gc.markCandidates(cutoff, now());
    let after = '';
    for (let page = 0; page < MAX_PAGES; page++) {
      signal?.throwIfAborted();
      const digests = await this.gc.candidates(after, batch);
      if (digests.length === 0) return;
      after = digests[digests.length - 1]!;
      const deleting = await this.gc.beginDeleting(digests, now());
      tally.reprieved += digests.length - deleting.length;
      if (deleting.length > 0) await this.delete(deleting, tally);
      if (digests.length < batch) return;
    }
  }

  /**
   * Deletes blobs already 'deleting' from the store, then from the index. The bytes go first: a
   * blob whose bytes the store would not delete is put back to live with its links untouched;
   * then the links of those that went (a link object left behind, should that fail, points at
   * nothing and is harmless: reindex skips it, verify reports it), then their rows.
   */
  private async delete(rows: readonly DeletingBlob[], tally: Tally): Promise<void> {
    const blobKey = new Map<string, DeletingBlob>();
    // A digest that does not parse has no key in the store to delete (nothing the registry writes
    // has one): its rows just go.
    const gone: DeletingBlob[] = [];
    for (const row of rows) {
      const digest = Digest.tryParse(row.digest);
      if (digest) blobKey.set(keys.blob(digest), row);
      else gone.push(row);
    }
    const failedKeys = new Set((await deleteKeys(this.store, [...blobKey.keys()])).map((f) => f.key));
    const kept: string[] = [];
    for (const [key, row] of blobKey) {
      if (failedKeys.has(key)) kept.push(row.digest);
      else gone.push(row);
    }
    if (kept.length > 0) {
      await this.gc.abortDeleting(kept, Date.now());
      tally.failed += kept.length;
    }
    if (gone.length === 0) return;
    const links: string[] = [];
    for (const row of gone) {
      const digest = Digest.tryParse(row.digest);
      if (digest) for (const repo of row.repositories) links.push(keys.layerLink(repo, digest));
    }
    await deleteKeys(this.store, links);
    await this.gc.finishDeleting(gone.map((row) => row.digest));
    for (const row of gone) {
      tally.blobs++;
      tally.bytes += row.size;
    }
  }
}

type ManifestKey = { repo: string; digest: string };

/** The config and layers an indexed manifest references (what its index row's blob references are). */
function referencedBlobs(content: Buffer, mediaType: string): string[] {
  try {
    const m = parseManifest(content, mediaType);
    return [...(m.config ? [m.config] : []), ...m.layers].map((d) => d.digest.toString());
  } catch {
    // The index took it when it was pushed; a manifest it cannot parse now references nothing here.
    return [];
  }
}

/** The report's counts, added up as the run goes. */
type Tally = { -readonly [K in Exclude<keyof GcReport, 'dryRun' | 'durationMs'>]: GcReport[K] };

/** Deletes keys in batches, with the store's DeleteObjects when it has one; returns the failures. */
async function deleteKeys(store: BlobStore, list: readonly string[]): Promise<Array<{ key: string; error: Error }>> {
  if (list.length === 0) return [];
  if (store.deleteMany) return store.deleteMany(list);
  const failures: Array<{ key: string; error: Error }> = [];
  for (const key of list) {
    try {
      await store.delete(key);
    } catch (err) {
      failures.push({ key, error: err as Error });
    }
  }
  return failures;
}
