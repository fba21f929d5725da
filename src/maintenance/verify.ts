/**
 * Verification of the store against the index (`ocireg verify`), and, on demand, repair.
 *
 * The index is what the registry serves from; the store holds the bytes and, beside them, the link
 * objects that let reindex rebuild the index. Verify checks both ways: every blob row has its bytes
 * (re-hashed, streamed), every blob object has a row, every manifest has its stored copy and its
 * link, every blob link and every tag has its link object (and the other way for blob links), and
 * every manifest's layers and children are there to be pulled. Each problem names the images it
 * affects.
 *
 * Repair never deletes stored bytes: a corrupt blob is moved aside (quarantine/), the index
 * forgets what the store cannot serve, and link objects and manifest copies are written again
 * from the index. A problem it cannot judge safely (a read that failed for another reason than
 * absence) is reported and left alone.
 *
 * The registry may be serving meanwhile: what the collector deletes while verify looks, or a
 * write holds, is not a problem.
 */
import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Digest, type DigestAlgorithm } from '../oci/digest.js';
import { parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { NON_DISTRIBUTABLE_LAYER_TYPES } from '../oci/media-types.js';
import { BlobDeletingError, type BlobStateRow, type GcIndex, type ManifestRow, type ManifestUse, type RegistryIndex } from '../index/contract.js';
import { keysetPages } from '../index/pages.js';
import { NotFoundError, type BlobStore } from '../storage/blob-store.js';
import { keys, parseRepositoryKey } from '../storage/keys.js';

export type ProblemKind =
  /** A blob row whose bytes are not in the store. */
  | 'missing'
  /** A blob whose stored bytes hash to its digest, with another size than the index's. */
  | 'wrong-size'
  /** Stored bytes that do not hash to their digest. */
  | 'corrupt'
  /** Something that could not be read (an error other than absence): never repaired. */
  | 'unchecked'
  /** A blob object in the store that the index has no row for. */
  | 'not-indexed'
  /** An object under blobs/ or a link whose key is not the layout's. */
  | 'stray'
  /** A manifest of the index whose stored copy is missing. */
  | 'manifest-missing'
  /** A manifest of the index whose `_manifests` link object is missing. */
  | 'manifest-link-missing'
  /** A manifest whose layers, config or children the repository does not hold: it cannot be pulled whole. */
  | 'broken'
  /** A blob link of the index without its `_layers` link object. */
  | 'link-missing'
  /** A `_layers` link object that the index does not record. */
  | 'link-not-indexed'
  /** A tag of the index without its link object. */
  | 'tag-missing'
  /** A tag whose link object names another digest than the index. */
  | 'tag-mismatch';

export interface VerifyProblem {
  kind: ProblemKind;
  /** The store key or the digest it is about. */
  subject: string;
  /** What is wrong and, with repair, what was done. */
  detail: string;
  /** The images it affects: `repository:tag`, or `repository@digest` for an untagged manifest. */
  affects: string[];
  /** Whether more images are affected than `affects` lists. */
  affectsMore: boolean;
  repaired: boolean;
}

export type VerifyPhase = 'blobs' | 'store blobs' | 'manifests' | 'links' | 'store links' | 'tags';

export interface VerifyProgress {
  phase: VerifyPhase;
  done: number;
  /** How many the phase has, when known. */
  total?: number;
  /** Bytes hashed so far (every phase). */
  bytes: number;
}

export interface VerifyOptions {
  readonly repair?: boolean;
  /** Only this repository's manifests, links and tags, and the blobs they reference or link. */
  readonly repository?: string;
  /** Called once per problem, as it is found (and, with repair, dealt with). */
  readonly onProblem?: (problem: VerifyProblem) => void;
  /** Called often (every chunk hashed): the caller throttles. */
  readonly onProgress?: (progress: VerifyProgress) => void;
  readonly now?: () => number;
}

export interface VerifyReport {
  /** Blobs checked (rows, and objects without one), and the bytes hashed. */
  blobs: number;
  bytes: number;
  manifests: number;
  /** Blob links of the index. */
  links: number;
  tags: number;
  problems: number;
  repaired: number;
}

/** Rows per index page, and store links per batched index look-up. */
const PAGE = 500;
/** How often hashing reports its bytes (onProgress), at most. */
const BYTE_PROGRESS_MS = 100;
/** How far the images affected by a blob are followed up (manifests, the indexes listing them...). */
const AFFECTS_DEPTH = 4;
/** At most this many manifests are looked at to name the images a problem affects. */
const AFFECTS_MANIFESTS = 200;

const BLOB_KEY_RE = /^blobs\/(sha256|sha512)\/([0-9a-f]{2})\/([0-9a-f]+)$/;

/** What a repair did: `repaired` false when it could only report (the action says why). */
interface RepairOutcome {
  repaired: boolean;
  action: string;
}

type Repair = () => Promise<RepairOutcome>;

/** Checks (and with `repair`, mends) the store and the index; see the module's comment. */
export async function verify(store: BlobStore, registry: RegistryIndex, gc: GcIndex, options: VerifyOptions = {}): Promise<VerifyReport> {
  return new Verifier(store, registry, gc, options).run();
}

class Verifier {
  private readonly report: VerifyReport = { blobs: 0, bytes: 0, manifests: 0, links: 0, tags: 0, problems: 0, repaired: 0 };
  private readonly repository: string | undefined;
  private readonly now: () => number;
  /** The repository id last looked up: rows come grouped by repository. */
  private lastRepo: { name: string; id: number | undefined } | undefined;
  /** Where the run is, for the progress line. */
  private phase: VerifyProgress = { phase: 'blobs', done: 0, bytes: 0 };
  private lastByteProgress = 0;

  constructor(
    private readonly store: BlobStore,
    private readonly registry: RegistryIndex,
    private readonly gc: GcIndex,
    private readonly options: VerifyOptions,
  ) {
    this.repository = options.repository;
    this.now = options.now ?? Date.now;
  }

  async run(): Promise<VerifyReport> {
    await this.checkBlobRows();
    // Objects without a row belong to no repository: only a whole-registry run looks at them.
    if (this.repository === undefined) await this.checkStoreBlobs();
    await this.checkManifests();
    await this.checkLinks();
    await this.checkStoreLinks();
    await this.checkTags();
    return this.report;
  }

  // ---- 1. blob rows ----

  private async checkBlobRows(): Promise<void> {
    if (this.repository !== undefined) {
      const digests = await this.repositoryBlobs(this.repository);
      let done = 0;
      this.progress('blobs', done, digests.length);
      for (const digest of digests) {
        const row = await this.gc.blobState(digest);
        if (row) await this.checkBlobRow(row);
        this.progress('blobs', ++done, digests.length);
      }
      return;
    }
    const total = this.options.onProgress ? await this.countBlobRows() : undefined;
    let done = 0;
    this.progress('blobs', done, total);
    for await (const row of pages((after: string, limit) => this.gc.blobs(after, limit), '', (r) => r.digest)) {
      await this.checkBlobRow(row);
      this.progress('blobs', ++done, total);
    }
  }

  /** How many blob rows there are (for the progress line only). */
  private async countBlobRows(): Promise<number> {
    let count = 0;
    for await (const _row of pages((after: string, limit) => this.gc.blobs(after, limit), '', (r) => r.digest)) count++;
    return count;
  }

  /** The blobs a repository links, its manifests' own bytes and what they reference, in digest order. */
  private async repositoryBlobs(repo: string): Promise<string[]> {
    const digests = new Set<string>();
    for await (const link of this.scoped(pages((after, limit) => this.gc.links(after, limit), { repository: repo, digest: '' }, linkKey))) {
      digests.add(link.digest);
    }
    for await (const m of this.scoped(pages((after, limit) => this.gc.manifests(after, limit), { repository: repo, digest: '' }, linkKey))) {
      digests.add(m.digest);
      const row = await this.registry.manifest(repo, m.digest);
      const parsed = row ? tryParse(row) : undefined;
      for (const d of parsed ? [...(parsed.config ? [parsed.config] : []), ...parsed.layers] : []) digests.add(d.digest.toString());
    }
    return [...digests].sort();
  }

  private async checkBlobRow(row: BlobStateRow): Promise<void> {
    // The collector is deleting it: its bytes may be gone already, rightly.
    if (row.state === 'deleting') return;
    const digest = Digest.tryParse(row.digest);
    if (!digest) {
      await this.problem('unchecked', row.digest, 'the index holds a blob row that is not a digest the registry supports', await this.blobAffects(row.digest));
      return;
    }
    this.report.blobs++;
    const key = keys.blob(digest);
    let hashed: Hashed | null;
    try {
      hashed = await this.hash(key, digest.algorithm);
    } catch (err) {
      await this.problem('unchecked', row.digest, `could not read ${key}: ${messageOf(err)}`, await this.blobAffects(row.digest));
      return;
    }
    if (!hashed) {
      if (await this.notBlobRowAnyMore(row.digest)) return;
      await this.problem(
        'missing',
        row.digest,
        `indexed with ${row.size} bytes, not in the store at ${key}`,
        await this.blobAffects(row.digest),
        async () => {
          await this.gc.removeBlob(row.digest);
          return { repaired: true, action: 'removed from the index: the images it affects are broken until it is pushed again' };
        },
      );
    } else if (hashed.digest !== row.digest) {
      await this.problem('corrupt', row.digest, `the bytes at ${key} hash to ${hashed.digest}`, await this.blobAffects(row.digest), async () => {
        const moved = await this.quarantine(digest);
        if (!moved.repaired) return moved;
        await this.gc.removeBlob(row.digest);
        return { repaired: true, action: `${moved.action}, and removed from the index: the images it affects are broken until it is pushed again` };
      });
    } else if (hashed.size !== row.size) {
      await this.problem(
        'wrong-size',
        row.digest,
        `indexed with ${row.size} bytes, but the store holds ${hashed.size} (which hash to the digest)`,
        await this.blobAffects(row.digest),
        () => this.recordSize(row.digest, hashed.size),
      );
    }
  }

  /**
   * Whether a blob row whose bytes were not found has gone meanwhile, is being deleted (the
   * collector), or is held by a write in flight (its bytes are on their way): then its absence is
   * no problem.
   */
  private async notBlobRowAnyMore(digest: string): Promise<boolean> {
    const row = await this.gc.blobState(digest);
    return !row || row.state === 'deleting' || (row.heldUntil !== null && row.heldUntil > this.now());
  }

  /** Records the blob again with the store's size, linked into the same repositories. */
  private async recordSize(digest: string, size: number): Promise<RepairOutcome> {
    const repositories = await this.linkingRepositories(digest);
    await this.gc.removeBlob(digest);
    const now = this.now();
    await this.registry.insertBlob(digest, size, now, now);
    for (const repo of repositories) await this.registry.addBlob(repo, digest, size, now);
    return { repaired: true, action: `recorded again with ${size} bytes, linked into ${repositories.length} repositor${repositories.length === 1 ? 'y' : 'ies'}` };
  }

  private async linkingRepositories(digest: string): Promise<string[]> {
    const names: string[] = [];
    for await (const r of pages((after: string, limit) => this.registry.blobRepositories(digest, after, limit), '', (r) => r.name)) {
      names.push(r.name);
    }
    return names;
  }

  // ---- 2. blob objects without a row ----

  private async checkStoreBlobs(): Promise<void> {
    let done = 0;
    for await (const obj of this.store.list(keys.blobsPrefix)) {
      this.progress('store blobs', ++done);
      const digest = blobKeyDigest(obj.key);
      if (!digest) {
        await this.problem('stray', obj.key, 'an object under blobs/ that is not a blob of the layout; left alone', NO_AFFECTS);
        continue;
      }
      if (await this.gc.blobState(digest.toString())) continue; // checked with the rows
      await this.checkUnindexedBlob(obj.key, digest);
    }
  }

  private async checkUnindexedBlob(key: string, digest: Digest): Promise<void> {
    let hashed: Hashed | null;
    try {
      hashed = await this.hash(key, digest.algorithm);
    } catch (err) {
      await this.problem('unchecked', key, `could not read it: ${messageOf(err)}`, NO_AFFECTS);
      return;
    }
    if (!hashed) return; // gone since it was listed
    this.report.blobs++;
    const size = hashed.size;
    if (hashed.digest !== digest.toString()) {
      await this.problem('corrupt', key, `not in the index, and its bytes hash to ${hashed.digest}`, NO_AFFECTS, () => this.quarantine(digest));
      return;
    }
    await this.problem('not-indexed', key, `${size} bytes that hash to ${digest} but have no row in the index`, NO_AFFECTS, async () => {
      const now = this.now();
      await this.registry.insertBlob(digest.toString(), size, now, now);
      return { repaired: true, action: 'recorded in the index (the garbage collector judges it like any other blob)' };
    });
  }

  /** Moves a blob's bytes aside, under quarantine/: not served any more, not deleted. */
  private async quarantine(digest: Digest): Promise<RepairOutcome> {
    if (!this.store.move) return { repaired: false, action: 'not quarantined: this store cannot move objects' };
    const to = `quarantine/${digest.algorithm}/${digest.hex}.${this.now()}`;
    try {
      await this.store.move(keys.blob(digest), to);
    } catch (err) {
      if (err instanceof NotFoundError) return { repaired: false, action: 'not quarantined: it disappeared meanwhile' };
      throw err;
    }
    return { repaired: true, action: `quarantined as ${to}` };
  }

  // ---- 3. manifests ----

  private async checkManifests(): Promise<void> {
    let done = 0;
    const start = { repository: this.repository ?? '', digest: '' };
    for await (const m of this.scoped(pages((after, limit) => this.gc.manifests(after, limit), start, linkKey))) {
      this.report.manifests++;
      await this.checkManifest(m.repository, m.digest);
      this.progress('manifests', ++done);
    }
  }

  private async checkManifest(repo: string, digestText: string): Promise<void> {
    const digest = Digest.tryParse(digestText);
    if (!digest) {
      await this.problem('unchecked', digestText, `${repo} holds a manifest that is not a digest the registry supports`, NO_AFFECTS);
      return;
    }
    let bytes, link;
    try {
      bytes = await this.store.stat(keys.blob(digest));
      link = await this.store.stat(keys.manifestLink(repo, digest));
    } catch (err) {
      await this.problem('unchecked', keys.manifestLink(repo, digest), `could not look for the manifest's objects: ${messageOf(err)}`, NO_AFFECTS);
      return;
    }
    // Read after the store: a manifest deleted meanwhile is gone from here too.
    const row = await this.registry.manifest(repo, digestText);
    if (!row) return;
    if (!bytes || !link) {
      await this.manifestIncomplete(repo, digest, row, !bytes);
      // Removed by the repair (its content was no better): nothing more to check.
      if (!(await this.registry.hasManifest(await this.repositoryId(repo), digestText))) return;
    }
    await this.checkReferences(repo, row);
  }

  /** A manifest whose stored copy or link is missing: written again from the index, when its content is whole. */
  private async manifestIncomplete(repo: string, digest: Digest, row: ManifestRow, bytesMissing: boolean): Promise<void> {
    const kind = bytesMissing ? 'manifest-missing' : 'manifest-link-missing';
    const key = bytesMissing ? keys.blob(digest) : keys.manifestLink(repo, digest);
    const detail = bytesMissing ? `the stored copy of ${repo}@${digest} is missing` : `the link object of ${repo}@${digest} is missing`;
    await this.problem(kind, key, detail, await this.manifestAffects(repo, digest.toString()), async () => {
      if (!Digest.of(row.content, digest.algorithm).equals(digest)) {
        await this.registry.deleteManifest(repo, digest.toString());
        return { repaired: true, action: `its indexed content does not hash to its digest either: removed from ${repo}` };
      }
      const written: string[] = [];
      if (!(await this.store.stat(keys.blob(digest)))) {
        await this.store.put(keys.blob(digest), row.content);
        written.push('stored copy');
      }
      if (!(await this.store.stat(keys.manifestLink(repo, digest)))) {
        await this.store.put(keys.manifestLink(repo, digest), Buffer.from(JSON.stringify({ mediaType: row.mediaType })));
        written.push('link');
      }
      // Its own blob row went with a quarantine or a missing blob's repair: recorded again.
      if (!(await this.gc.blobState(digest.toString()))) await this.registry.insertBlob(digest.toString(), row.content.length, this.now());
      return { repaired: true, action: written.length > 0 ? `${written.join(' and ')} written again from the index` : 'present again' };
    });
  }

  /** Every layer, config and child of the manifest must be in its repository, else it cannot be pulled. */
  private async checkReferences(repo: string, row: ManifestRow): Promise<void> {
    const parsed = tryParse(row);
    if (!parsed) {
      await this.problem('unchecked', row.digest, `the content of ${repo}@${row.digest} in the index does not parse`, NO_AFFECTS);
      return;
    }
    const repoId = await this.repositoryId(repo);
    const blobs = [...(parsed.config ? [parsed.config] : []), ...parsed.layers]
      .filter((d) => !(NON_DISTRIBUTABLE_LAYER_TYPES.has(d.mediaType) && d.urls?.length))
      .map((d) => d.digest.toString());
    const linked = await this.registry.linkedBlobSizes(repoId, blobs);
    const absent = [...new Set(blobs.filter((d) => !linked.has(d)))];
    for (const child of parsed.manifests) {
      if (!(await this.registry.hasManifest(repoId, child.digest.toString()))) absent.push(child.digest.toString());
    }
    if (absent.length === 0) return;
    await this.problem(
      'broken',
      row.digest,
      `${repo}@${row.digest} references ${absent.join(', ')}, which ${repo} does not hold: push ${absent.length === 1 ? 'it' : 'them'} again`,
      await this.manifestAffects(repo, row.digest),
    );
  }

  // ---- 4. blob links ----

  private async checkLinks(): Promise<void> {
    let done = 0;
    const start = { repository: this.repository ?? '', digest: '' };
    for await (const link of this.scoped(pages((after, limit) => this.gc.links(after, limit), start, linkKey))) {
      this.report.links++;
      await this.checkLink(link.repository, link.digest);
      this.progress('links', ++done);
    }
  }

  private async checkLink(repo: string, digestText: string): Promise<void> {
    const digest = Digest.tryParse(digestText);
    if (!digest) {
      await this.problem('unchecked', digestText, `${repo} links a blob that is not a digest the registry supports`, NO_AFFECTS);
      return;
    }
    const key = keys.layerLink(repo, digest);
    let present;
    try {
      present = await this.store.stat(key);
    } catch (err) {
      await this.problem('unchecked', key, `could not look for it: ${messageOf(err)}`, NO_AFFECTS);
      return;
    }
    if (present) return;
    // Unlinked meanwhile (the link object goes first), or being deleted by the collector.
    if (!(await this.registry.linkedBlobSizes(await this.repositoryId(repo), [digestText])).has(digestText)) return;
    await this.problem('link-missing', key, `${repo} links ${digestText} in the index, but the store has no link object`, await this.blobAffects(digestText, repo), async () => {
      await this.store.put(key, new Uint8Array(0));
      return { repaired: true, action: 'link object written again' };
    });
  }

  /** The store's `_layers` link objects, looked up in the index a batch at a time. */
  private async checkStoreLinks(): Promise<void> {
    const prefix = this.repository === undefined ? keys.repositoriesPrefix : `${keys.repositoriesPrefix}${this.repository}/`;
    let batch: Array<{ key: string; repo: string; digest: Digest }> = [];
    let done = 0;
    for await (const obj of this.store.list(prefix)) {
      const parsed = parseRepositoryKey(obj.key);
      if (!parsed || parsed.kind !== '_layers') continue;
      if (this.repository !== undefined && parsed.repo !== this.repository) continue; // a repository below it
      const digest = Digest.tryParse(parsed.rest.replace('/', ':'));
      if (!digest) {
        await this.problem('stray', obj.key, 'a blob link whose name is not a digest; left alone', NO_AFFECTS);
        continue;
      }
      batch.push({ key: obj.key, repo: parsed.repo, digest });
      this.progress('store links', ++done);
      if (batch.length >= PAGE) {
        await this.checkStoreLinkBatch(batch);
        batch = [];
      }
    }
    await this.checkStoreLinkBatch(batch);
  }

  private async checkStoreLinkBatch(batch: ReadonlyArray<{ key: string; repo: string; digest: Digest }>): Promise<void> {
    const byRepo = new Map<string, Array<{ key: string; digest: Digest }>>();
    for (const l of batch) byRepo.set(l.repo, [...(byRepo.get(l.repo) ?? []), l]);
    for (const [repo, links] of byRepo) {
      const linked = await this.registry.linkedBlobSizes(await this.repositoryId(repo), links.map((l) => l.digest.toString()));
      for (const l of links) if (!linked.has(l.digest.toString())) await this.storeLinkNotIndexed(l.key, repo, l.digest);
    }
  }

  private async storeLinkNotIndexed(key: string, repo: string, digest: Digest): Promise<void> {
    const row = await this.gc.blobState(digest.toString());
    if (row?.state === 'deleting') return; // the collector removes the link object next
    await this.problem('link-not-indexed', key, `the store links ${digest} into ${repo}, but the index does not`, NO_AFFECTS, async () => {
      if (!row) return { repaired: false, action: 'left alone: the blob is not in the index (push it again)' };
      let bytes;
      try {
        bytes = await this.store.stat(keys.blob(digest));
      } catch (err) {
        return { repaired: false, action: `left alone: could not look for the blob: ${messageOf(err)}` };
      }
      if (!bytes) return { repaired: false, action: 'left alone: the blob is not in the store (push it again)' };
      try {
        await this.registry.addBlob(repo, digest.toString(), row.size, this.now());
      } catch (err) {
        if (err instanceof BlobDeletingError) return { repaired: false, action: 'left alone: the garbage collector is deleting the blob' };
        throw err;
      }
      return { repaired: true, action: 'linked in the index' };
    });
  }

  // ---- 5. tags ----

  private async checkTags(): Promise<void> {
    let done = 0;
    const start = { repository: this.repository ?? '', tag: '' };
    for await (const t of this.scoped(pages((after, limit) => this.gc.tags(after, limit), start, (r) => ({ repository: r.repository, tag: r.tag })))) {
      this.report.tags++;
      await this.checkTag(t.repository, t.tag, t.digest);
      this.progress('tags', ++done);
    }
  }

  private async checkTag(repo: string, tag: string, digest: string): Promise<void> {
    const key = keys.tagLink(repo, tag);
    let stored;
    try {
      stored = (await this.store.get(key))?.toString('utf8').trim();
    } catch (err) {
      await this.problem('unchecked', key, `could not read it: ${messageOf(err)}`, NO_AFFECTS);
      return;
    }
    if (stored === digest) return;
    // Moved or removed meanwhile (a push writes the store first, then the index).
    if ((await this.registry.tagDigest(repo, tag)) !== digest) return;
    const kind = stored === undefined ? 'tag-missing' : 'tag-mismatch';
    const detail = stored === undefined ? `${repo}:${tag} points at ${digest}, but the store has no tag link` : `${repo}:${tag} points at ${digest} in the index, but at ${JSON.stringify(stored)} in the store`;
    await this.problem(kind, key, detail, { names: [`${repo}:${tag}`], more: false }, async () => {
      // Still what the index says? A push may have moved it since.
      if ((await this.registry.tagDigest(repo, tag)) !== digest) return { repaired: false, action: 'left alone: the tag moved meanwhile' };
      await this.store.put(key, Buffer.from(digest));
      return { repaired: true, action: 'tag link written again from the index' };
    });
  }

  // ---- shared ----

  /** Reports a problem, repairing it first when asked to (a repair that fails is reported, not thrown). */
  private async problem(kind: ProblemKind, subject: string, detail: string, affects: Affects, repair?: Repair): Promise<void> {
    let repaired = false;
    let text = detail;
    if (this.options.repair && repair) {
      try {
        const outcome = await repair();
        repaired = outcome.repaired;
        text += `; ${outcome.action}`;
      } catch (err) {
        text += `; not repaired: ${messageOf(err)}`;
      }
    }
    this.report.problems++;
    if (repaired) this.report.repaired++;
    this.options.onProblem?.({ kind, subject, detail: text, affects: affects.names, affectsMore: affects.more, repaired });
  }

  private progress(phase: VerifyPhase, done: number, total?: number): void {
    this.phase = { phase, done, ...(total !== undefined ? { total } : {}), bytes: this.report.bytes };
    this.options.onProgress?.(this.phase);
  }

  /** Hashes an object, streamed; null when it does not exist. */
  private async hash(key: string, algorithm: DigestAlgorithm): Promise<Hashed | null> {
    let stream: Readable;
    try {
      stream = await this.store.read(key);
    } catch (err) {
      if (err instanceof NotFoundError) return null;
      throw err;
    }
    const hash = createHash(algorithm);
    let size = 0;
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      hash.update(chunk);
      size += chunk.length;
      this.report.bytes += chunk.length;
      // Not every chunk: a line on a terminal needs a few a second at most.
      const now = Date.now();
      if (now - this.lastByteProgress >= BYTE_PROGRESS_MS) {
        this.lastByteProgress = now;
        this.progress(this.phase.phase, this.phase.done, this.phase.total);
      }
    }
    return { digest: `${algorithm}:${hash.digest('hex')}`, size };
  }

  private async repositoryId(name: string): Promise<number | undefined> {
    if (this.lastRepo?.name !== name) this.lastRepo = { name, id: await this.registry.repositoryId(name) };
    return this.lastRepo.id;
  }

  /** Stops a listing at the end of the repository verified, when there is one. */
  private async *scoped<R extends { repository: string }>(rows: AsyncIterable<R>): AsyncGenerator<R> {
    for await (const row of rows) {
      if (this.repository !== undefined && row.repository !== this.repository) return;
      yield row;
    }
  }

  /** The images a blob (or a manifest, listed by indexes) affects, through the manifests using it. */
  private async blobAffects(digest: string, repo?: string): Promise<Affects> {
    return this.followUsers([], digest, repo);
  }

  /** A manifest itself, and the indexes of its repository listing it. */
  private async manifestAffects(repo: string, digest: string): Promise<Affects> {
    const self: ManifestUse = { repository: repo, digest, tags: await this.registry.tagsOf(repo, digest) };
    return this.followUsers([self], digest, repo);
  }

  /**
   * Walks up from `digest` through the manifests using it (any repository's for a blob, only
   * `repo`'s when given: a manifest is listed by indexes of its own repository), a bounded number
   * of levels and of manifests.
   */
  private async followUsers(start: ManifestUse[], digest: string, repo: string | undefined): Promise<Affects> {
    const uses = [...start];
    const seen = new Set(uses.map(useKey));
    let more = false;
    let frontier: Array<{ digest: string; repository: string | undefined }> = [{ digest, repository: repo }];
    for (let depth = 0; depth < AFFECTS_DEPTH && frontier.length > 0; depth++) {
      const next: typeof frontier = [];
      for (const node of frontier) {
        for (const use of await this.gc.usersOf(node.digest)) {
          if (node.repository !== undefined && use.repository !== node.repository) continue;
          if (seen.has(useKey(use))) continue;
          if (seen.size >= AFFECTS_MANIFESTS) {
            more = true;
            break;
          }
          seen.add(useKey(use));
          uses.push(use);
          next.push({ digest: use.digest, repository: use.repository });
        }
      }
      frontier = next;
    }
    const names = uses.flatMap((u) => (u.tags.length > 0 ? u.tags.map((t) => `${u.repository}:${t}`) : [`${u.repository}@${u.digest}`]));
    return { names, more };
  }
}

interface Hashed {
  digest: string;
  size: number;
}

interface Affects {
  names: string[];
  more: boolean;
}

const NO_AFFECTS: Affects = { names: [], more: false };

function useKey(u: ManifestUse): string {
  return `${u.repository}@${u.digest}`;
}

function linkKey(r: { repository: string; digest: string }): { repository: string; digest: string } {
  return { repository: r.repository, digest: r.digest };
}

/** Every row of a keyset-paged listing after `start`, PAGE rows a query. */
function pages<K, R>(page: (after: K, limit: number) => Promise<readonly R[]>, start: K, keyOf: (row: R) => K): AsyncGenerator<R> {
  return keysetPages(page, start, keyOf, PAGE);
}

/** The digest a key under blobs/ stands for, or null when it is not the layout's. */
function blobKeyDigest(key: string): Digest | null {
  const m = BLOB_KEY_RE.exec(key);
  if (!m || !m[3]!.startsWith(m[2]!)) return null;
  return Digest.tryParse(`${m[1]}:${m[3]}`);
}

function tryParse(row: ManifestRow): ParsedManifest | undefined {
  try {
    return parseManifest(row.content, row.mediaType);
  } catch {
    return undefined;
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** How many names of affected images a problem's line shows. */
const AFFECTS_SHOWN = 20;

/** A problem as one line of the command's output: kind, key or digest, detail, affected images, by tabs. */
export function formatProblem(p: VerifyProblem): string {
  const clean = (s: string) => s.replace(/[\t\r\n]+/g, ' ');
  const shown = p.affects.slice(0, AFFECTS_SHOWN);
  const hidden = p.affects.length - shown.length;
  let affects = shown.length === 0 ? 'affects no image' : `affects ${shown.join(', ')}`;
  if (hidden > 0) affects += ` and ${hidden}${p.affectsMore ? '+' : ''} more`;
  else if (p.affectsMore) affects += ' and more';
  return [p.kind, p.subject, p.detail, affects].map(clean).join('\t');
}
