import { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { effectiveArtifactType, parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { INDEX_MEDIA_TYPES, NON_DISTRIBUTABLE_LAYER_TYPES, accepts } from '../oci/media-types.js';
import { isValidTag } from '../oci/names.js';
import type { BlobStore } from '../storage/blob-store.js';
import { keys, parseRepositoryKey } from '../storage/keys.js';
import { LockLostError, ManifestReferencesError, type GcIndex, type IndexLocks, type ManifestRow, type RegistryIndex } from '../index/contract.js';
import { unreachableManifests } from '../maintenance/gc/mark.js';
import type { BlobService } from './blobs.js';
import { LocalLocks } from '../index/local-locks.js';
import { OPEN_RULES, type RepositoryRules, type TagMove } from './repository-rules.js';
import { TagCache, type TagList } from './tag-cache.js';
import { eventsOf, type EventOrigin, type EventSink, type EventSubject } from '../events/events.js';

/** A reference from a URL: a tag or a digest. */
export type Reference = { tag: string } | { digest: Digest };

export interface StoredManifest {
  digest: string;
  mediaType: string;
  content: Buffer;
}

export interface PutResult {
  digest: Digest;
  subject?: Digest;
}

export interface Referrer {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

/** Parses a manifest reference: a digest if it has a colon, else a tag. */
export function parseReference(value: string): Reference {
  if (value.includes(':')) return { digest: Digest.parse(value) };
  return { tag: value };
}

/** Manifests, tags and referrers of repositories. */
export class ManifestService {
  /** Tag lists of the repositories listed lately (a quarter of a million tags at most). */
  readonly tagLists = new TagCache(250_000);

  constructor(
    private readonly store: BlobStore,
    private readonly index: RegistryIndex,
    private readonly rules: () => RepositoryRules = () => OPEN_RULES,
    /**
     * Serialise a repository's manifest and tag writes, over every node sharing the index: the
     * store's tag links and the index then see the writes in the same order.
     */
    private readonly locks: IndexLocks = new LocalLocks(),
    /** Holds a manifest's bytes against the collector while they are written (see BlobService.claim). */
    private readonly blobs?: BlobService,
  ) {}

  /** Where events go (set by Registry): nowhere unless notifications are on. */
  sink: () => EventSink | undefined = () => undefined;

  /**
   * Runs `fn` holding the repository's write lock. `fenced` throws LockLostError once the lock
   * is lost (another node may hold it now): the writes call it before each step.
   */
  private writes<T>(repo: string, fn: (fenced: () => void) => Promise<T>): Promise<T> {
    const name = `repository:${repo}`;
    return this.locks.run(name, (lost) =>
      fn(() => {
        if (lost.aborted) throw new LockLostError(name);
      }),
    );
  }

  /**
   * The manifest a reference names, in a media type the client accepts. An
   * index that the client cannot take is answered, as distribution does, with
   * its linux/amd64 image when there is one.
   */
  async get(repo: string, ref: Reference, accept?: string | string[]): Promise<StoredManifest> {
    const row = await this.find(repo, ref);
    if (!row) throw manifestUnknown(repo, ref);
    if (accepts(accept, row.mediaType)) return row;
    if (INDEX_MEDIA_TYPES.has(row.mediaType)) {
      const fallback = await this.platformFallback(repo, row, accept);
      if (fallback) return fallback;
    }
    throw new RegistryError('MANIFEST_UNKNOWN', `the manifest is a ${row.mediaType}, which the Accept header does not allow`, {
      detail: { mediaType: row.mediaType },
    });
  }

  private find(repo: string, ref: Reference): Promise<ManifestRow | undefined> {
    if ('tag' in ref) return isValidTag(ref.tag) ? this.index.manifestByTag(repo, ref.tag) : Promise.resolve(undefined);
    return this.index.manifest(repo, ref.digest.toString());
  }

  private async platformFallback(repo: string, row: ManifestRow, accept?: string | string[]): Promise<StoredManifest | undefined> {
    let doc: { manifests?: Array<{ digest?: string; platform?: { os?: string; architecture?: string } }> };
    try {
      doc = JSON.parse(row.content.toString('utf8'));
    } catch {
      return undefined;
    }
    const child = doc.manifests?.find((m) => m.platform?.os === 'linux' && m.platform.architecture === 'amd64');
    if (!child?.digest) return undefined;
    const found = await this.index.manifest(repo, child.digest);
    return found && accepts(accept, found.mediaType) ? found : undefined;
  }

  /**
   * Validates and stores a manifest: bytes in the store first (content-addressed),
   * then links and tags in the store, then one index transaction. The repository's
   * rules admit the push before anything is written, and, under the write lock, see
   * every tag the push would move (a tag already on this digest is not a move).
   */
  async put(
    repo: string,
    ref: Reference,
    body: Buffer,
    contentType: string | undefined,
    extraTags: string[] = [],
    origin?: EventOrigin,
  ): Promise<PutResult> {
    const manifest = parseManifest(body, contentType);
    const digest = 'digest' in ref ? Digest.of(body, ref.digest.algorithm) : Digest.of(body);
    if ('digest' in ref && !digest.equals(ref.digest)) {
      throw new RegistryError('DIGEST_INVALID', 'the manifest does not have the digest in the URL', {
        detail: { expected: ref.digest.toString(), actual: digest.toString() },
      });
    }
    const tags = [...new Set('tag' in ref ? [ref.tag, ...extraTags] : extraTags)];
    const artifactType = effectiveArtifactType(manifest);
    if (manifest.mediaType.includes('\u0000') || artifactType?.includes('\u0000')) {
      // Before anything is written: the index (PostgreSQL) cannot hold such a text.
      throw new RegistryError('MANIFEST_INVALID', 'the manifest\'s media type or artifact type contains a NUL character');
    }
    await this.rules().admitPush(repo);
    return this.writes(repo, async (fenced) => {
      await this.rules().admitPush(repo); // again: the repository may have been deleted while this waited
      await this.verifyReferences(repo, manifest);
      const moves = await this.tagMoves(repo, digest.toString(), tags);
      if (moves.length > 0) await this.rules().checkTagMoves(repo, moves);
      // One push event per tag (distribution's), or one without a tag for a push by digest.
      const base = { kind: 'manifest', repository: repo, digest: digest.toString(), mediaType: manifest.mediaType, size: body.length } as const;
      const subjects: EventSubject[] = tags.length > 0 ? tags.map((tag) => ({ ...base, tag })) : [base];
      await this.write(repo, digest, manifest, body, tags, fenced, eventsOf(this.sink(), origin, 'push', subjects));
      return manifest.subject ? { digest, subject: manifest.subject.digest } : { digest };
    });
  }

  /**
   * Records a manifest that the pull-through cache fetched from its upstream, as a push records one
   * (bytes first, then links and tags, then one index transaction; the repository's rules admit it
   * and see its tag moves), except that its blobs and child manifests need not be in the repository
   * yet: the cache fetches each when it is pulled. Its digest is the one it was fetched by or
   * verified against.
   */
  async putCached(repo: string, digest: Digest, body: Buffer, contentType: string | undefined, tags: readonly string[]): Promise<void> {
    const manifest = parseManifest(body, contentType);
    if (!Digest.of(body, digest.algorithm).equals(digest)) {
      throw new RegistryError('DIGEST_INVALID', 'the manifest does not have its digest', { detail: { expected: digest.toString() } });
    }
    await this.rules().admitPush(repo);
    await this.writes(repo, async (fenced) => {
      await this.rules().admitPush(repo);
      const moves = await this.tagMoves(repo, digest.toString(), tags);
      if (moves.length > 0) await this.rules().checkTagMoves(repo, moves);
      await this.write(repo, digest, manifest, body, [...tags], fenced, undefined, false);
    });
  }

  /**
   * Whether the repository's rules would let a push of `digest` write these tags (an immutable
   * tag may not move): asked ahead of a push that writes other things first (an archive import),
   * and asked again by `put` under the write lock.
   */
  async checkTags(repo: string, digest: Digest, tags: readonly string[]): Promise<void> {
    const moves = await this.tagMoves(repo, digest.toString(), tags);
    if (moves.length > 0) await this.rules().checkTagMoves(repo, moves);
  }

  /** The tags a push of `digest` would write, with where each points now; those already on it are left out. */
  private async tagMoves(repo: string, digest: string, tags: readonly string[]): Promise<TagMove[]> {
    const moves: TagMove[] = [];
    for (const tag of tags) {
      const from = await this.index.tagDigest(repo, tag);
      if (from !== digest) moves.push({ tag, from, to: digest });
    }
    return moves;
  }

  /**
   * Bytes in the store first (content-addressed), then links and tags, then one
   * index transaction. A manifest the repository already holds keeps the media
   * type it was first pushed with, in the store as in the index.
   */
  private async write(
    repo: string,
    digest: Digest,
    manifest: ParsedManifest,
    body: Buffer,
    tags: string[],
    fenced: () => void,
    events?: readonly string[],
    /** Whether the index checks that the blobs and children are in the repository (a push), or not (a cached manifest). */
    checkReferences = true,
  ): Promise<void> {
    const blobKey = keys.blob(digest);
    await this.blobs?.claim(digest.toString(), body.length);
    try {
      if (!(await this.store.stat(blobKey))) await this.store.put(blobKey, body);
      if (!(await this.index.manifest(repo, digest.toString()))) {
        fenced();
        await this.store.put(keys.manifestLink(repo, digest), Buffer.from(JSON.stringify({ mediaType: manifest.mediaType })));
      }
      for (const tag of tags) {
        fenced(); // a tag link written after the lock was lost could disagree with the index
        await this.store.put(keys.tagLink(repo, tag), Buffer.from(digest.toString()));
      }
      fenced();
      // The references are checked again in the index's transaction, the one the collector's
      // compare-and-set respects: a blob deleted since verifyReferences is caught here.
      await this.index.putManifest(repo, toIndexRow(digest, manifest, body), tags, undefined, {
        checkReferences,
        external: externalBlobs(manifest).map((d) => d.digest.toString()),
        ...(events ? { events } : {}),
      });
      if (events) this.sink()?.written();
    } catch (err) {
      if (err instanceof ManifestReferencesError) throw referencesUnknown(err.problems);
      throw err;
    } finally {
      // Recorded (a manifest is never collected while a repository holds it) or refused: the hold ends.
      await this.blobs?.release(digest.toString());
    }
    if (tags.length > 0) this.tagLists.delete(repo);
  }

  /** Every blob and child manifest must already be in the repository. */
  private async verifyReferences(repo: string, m: ParsedManifest): Promise<void> {
    const repoId = await this.index.repositoryId(repo);
    const external = new Set(externalBlobs(m));
    const blobs = [...(m.config ? [m.config] : []), ...m.layers].filter((d) => !external.has(d));
    const sizes = await this.index.linkedBlobSizes(repoId, blobs.map((d) => d.digest.toString()));
    const problems: Array<{ digest: string; reason: string }> = [];
    for (const d of blobs) {
      const size = sizes.get(d.digest.toString());
      if (size === undefined) problems.push({ digest: d.digest.toString(), reason: 'blob unknown to repository' });
      else if (size !== d.size) problems.push({ digest: d.digest.toString(), reason: `size is ${size}, not ${d.size}` });
    }
    for (const d of m.manifests) {
      if (!(await this.index.hasManifest(repoId, d.digest.toString()))) {
        problems.push({ digest: d.digest.toString(), reason: 'manifest unknown to repository' });
      }
    }
    if (problems.length > 0) throw referencesUnknown(problems);
  }

  /**
   * Removes, under the repository's write lock, the manifests that no tag reaches and that were
   * pushed before `cutoff` (see mark.ts): the index decides inside its transaction, then their
   * links go from the store. With `dryRun`, only says which they are. Returns their digests.
   */
  async removeUnreachable(repo: string, cutoff: number, gc: GcIndex, dryRun = false): Promise<string[]> {
    return this.writes(repo, async (fenced) => {
      const repoId = await this.index.repositoryId(repo);
      if (repoId === undefined) return [];
      if (dryRun) return unreachableManifests(await gc.manifestGraph(repoId), cutoff);
      fenced();
      const removed = await gc.removeManifestsIf(repoId, (graph) => unreachableManifests(graph, cutoff));
      // The index has forgotten them: a link left behind if this is cut short would only bring an
      // untagged manifest back on a reindex, never lose one.
      for (const d of removed) await this.store.delete(keys.manifestLink(repo, Digest.parse(d)));
      if (removed.length > 0) this.tagLists.delete(repo);
      return removed;
    });
  }

  /** By digest: the manifest and its tags. By tag: the tag only. */
  async delete(repo: string, ref: Reference, origin?: EventOrigin): Promise<void> {
    return this.writes(repo, () => this.deleteNow(repo, ref, origin));
  }

  /**
   * Deletes a manifest (and its tags) only if, under the repository's write lock, the
   * repository still holds it and `accept` takes its tags and the indexes that list it, as they
   * are now (a lifecycle run checks the tags are those its plan saw, and that no index lists it).
   * Returns whether it was deleted.
   */
  async deleteIf(
    repo: string,
    digest: Digest,
    accept: (tags: readonly string[], parents: readonly string[]) => boolean,
    origin?: EventOrigin,
  ): Promise<boolean> {
    return this.writes(repo, async () => {
      const events = eventsOf(this.sink(), origin, 'delete', [{ kind: 'manifest', repository: repo, digest: digest.toString() }]);
      // The index first, in one transaction that checks the tags again: another process (a CLI
      // run beside the registry) holds no lock of ours. The links in the store follow; if that is
      // cut short, reindex would bring the image back, never lose one.
      const removed = await this.index.deleteManifestIf(repo, digest.toString(), accept, events);
      if (!removed) return false;
      if (events) this.sink()?.written();
      this.tagLists.delete(repo);
      for (const tag of removed) await this.store.delete(keys.tagLink(repo, tag));
      await this.store.delete(keys.manifestLink(repo, digest));
      return true;
    });
  }

  /**
   * Removes everything a repository holds: its manifest, tag and blob links in the store
   * (the keys under repositories/<repo>/ that belong to it, not to a repository nested
   * under its name), then its rows in the index. The content stays for other repositories
   * (garbage collection takes what none holds). With `onlyIfEmpty`, a repository that holds
   * a manifest is left as it is and false is returned. Under the repository's write lock, so
   * that no push of a manifest interleaves.
   */
  async deleteRepository(repo: string, options: { onlyIfEmpty?: boolean; signal?: AbortSignal } = {}): Promise<boolean> {
    return this.writes(repo, async () => {
      if (options.onlyIfEmpty && (await this.index.repositoryHasManifests(repo))) return false;
      const own: string[] = [];
      for await (const obj of this.store.list(`${keys.repositoriesPrefix}${repo}/`, options.signal)) {
        if (parseRepositoryKey(obj.key)?.repo === repo) own.push(obj.key);
      }
      // Tags first, then manifests, then layers: a deletion cut short leaves links that reindex
      // can still make sense of (a tag never outlives the manifest it names).
      const order = (key: string) => (key.includes('/_tags/') ? 0 : key.includes('/_manifests/') ? 1 : 2);
      own.sort((a, b) => order(a) - order(b));
      for (const key of own) await this.store.delete(key);
      await this.index.deleteRepository(repo);
      this.tagLists.delete(repo);
      return true;
    });
  }

  private async deleteNow(repo: string, ref: Reference, origin?: EventOrigin): Promise<void> {
    const sink = this.sink();
    if ('tag' in ref) {
      const digest = isValidTag(ref.tag) ? await this.index.tagDigest(repo, ref.tag) : undefined;
      if (!digest) throw manifestUnknown(repo, ref);
      await this.store.delete(keys.tagLink(repo, ref.tag));
      // A tag's deletion names the tag (and the digest it pointed at), as distribution's does.
      const events = eventsOf(sink, origin, 'delete', [{ kind: 'manifest', repository: repo, digest, tag: ref.tag }]);
      if ((await this.index.deleteTag(repo, ref.tag, events)) && events) sink?.written();
      this.tagLists.delete(repo);
      return;
    }
    const d = ref.digest.toString();
    if (!(await this.index.manifest(repo, d))) throw manifestUnknown(repo, ref);
    for (const tag of await this.index.tagsOf(repo, d)) await this.store.delete(keys.tagLink(repo, tag));
    await this.store.delete(keys.manifestLink(repo, ref.digest));
    const events = eventsOf(sink, origin, 'delete', [{ kind: 'manifest', repository: repo, digest: d }]);
    if ((await this.index.deleteManifest(repo, d, events)) && events) sink?.written();
    this.tagLists.delete(repo);
  }

  /** A repository's tags in lexical order; NAME_UNKNOWN for an unknown repository. */
  async tags(repo: string): Promise<TagList> {
    // Another process or node may have changed the tags since the list was read: the index's
    // version of the repository's tags says so.
    const version = await this.index.tagsVersion(repo);
    return this.tagLists.get(repo, version, async () => {
      const repoId = await this.index.repositoryId(repo);
      if (repoId === undefined) throw new RegistryError('NAME_UNKNOWN', undefined, { detail: { name: repo } });
      return this.index.allTags(repoId);
    });
  }

  /** Referrers in digest order, after `last` when given. */
  async referrers(repo: string, subject: Digest, artifactType?: string, last = ''): Promise<Referrer[]> {
    return (await this.index.referrers(repo, subject.toString(), last))
      .filter((r) => artifactType === undefined || r.artifactType === artifactType)
      .map((r) => ({
        mediaType: r.mediaType,
        digest: r.digest,
        size: r.size,
        ...(r.artifactType ? { artifactType: r.artifactType } : {}),
        ...(r.annotations ? { annotations: JSON.parse(r.annotations) as Record<string, string> } : {}),
      }));
  }

  /** Repository names after `last`, sorted, at most `limit`. */
  catalog(last: string, limit: number): Promise<string[]> {
    return this.index.catalog(last, limit);
  }

  /**
   * The names after `last` that `visible` accepts, at most `limit`, reading at most `budget`
   * names of the index (in batches; the index is synchronous, so a bound keeps one request from
   * holding the event loop over a huge registry). `scannedTo` is the last name read when the
   * budget ran out before the end: a next page starts after it.
   */
  async visibleCatalog(
    last: string,
    limit: number,
    visible: (repo: string) => boolean,
    budget = CATALOG_SCAN_BUDGET,
  ): Promise<{ names: string[]; scannedTo?: string }> {
    const names: string[] = [];
    let after = last;
    let scanned = 0;
    while (names.length < limit) {
      if (scanned >= budget) return { names, scannedTo: after };
      const want = Math.min(CATALOG_BATCH, budget - scanned);
      const batch = await this.index.catalog(after, want);
      scanned += batch.length;
      for (const name of batch) {
        after = name;
        if (visible(name)) names.push(name);
        if (names.length === limit) break;
      }
      if (batch.length < want) break; // the end of the index
    }
    return { names };
  }
}

/** Repositories read per index query when a filtered catalog is assembled, and at most per page. */
const CATALOG_BATCH = 1000;
/** Index names one page of a filtered catalog reads at most (about 25 ms here). */
export const CATALOG_SCAN_BUDGET = 20_000;

export function toIndexRow(digest: Digest, m: ParsedManifest, body: Buffer) {
  return {
    digest: digest.toString(),
    mediaType: m.mediaType,
    content: body,
    artifactType: effectiveArtifactType(m),
    subject: m.subject?.digest.toString(),
    annotations: m.annotations,
    blobs: [...(m.config ? [m.config] : []), ...m.layers].map((d) => d.digest.toString()),
    children: m.manifests.map((d) => d.digest.toString()),
  };
}

/** The layers whose bytes live elsewhere (non-distributable, with urls): the registry need not hold them. */
function externalBlobs(m: ParsedManifest): ParsedManifest['layers'] {
  return m.layers.filter((d) => NON_DISTRIBUTABLE_LAYER_TYPES.has(d.mediaType) && (d.urls?.length ?? 0) > 0);
}

function referencesUnknown(problems: ReadonlyArray<{ digest: string; reason: string }>): RegistryError {
  return new RegistryError('MANIFEST_BLOB_UNKNOWN', 'manifest references content unknown to the repository', {
    detail: problems,
  });
}

function manifestUnknown(repo: string, ref: Reference): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', undefined, {
    detail: { name: repo, ...('tag' in ref ? { tag: ref.tag } : { digest: ref.digest.toString() }) },
  });
}

