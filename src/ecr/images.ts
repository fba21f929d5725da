/**
 * A repository's images as ECR reports them: image ids for ListImages, image details for
 * DescribeImages (with `imageSizeInBytes` computed as ECR documents it), referrers, and the
 * images the lifecycle engine may expire. Reads the index only (ImageIndex), never the store.
 */
import type { ImageIdCursor, ImageIndex, ImageReferrerRow, ImageRow, TagStatus } from '../index/contract.js';
import type { ImageFacts } from '../maintenance/lifecycle/evaluate.js';
import { INDEX_MEDIA_TYPES } from '../oci/media-types.js';
import type { Registry } from '../registry/registry.js';

export type { ImageFacts, ImageIdCursor, ImageRow, TagStatus };

/** An image id as ECR's ImageIdentifier has it. */
export interface ImageId {
  readonly imageDigest: string;
  readonly imageTag?: string;
}

/** What DescribeImages says of one image (times in ms; the operation turns them into epoch seconds). */
export interface ImageDetail {
  readonly digest: string;
  readonly tags: readonly string[];
  readonly sizeInBytes: number;
  readonly pushedAt: number;
  readonly manifestMediaType: string;
  readonly artifactMediaType?: string;
  readonly subject?: string;
  readonly lastPulledAt?: number;
}

export interface ImageReferrer {
  readonly digest: string;
  readonly mediaType: string;
  readonly size: number;
  readonly artifactType?: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

/** A page of results, and where the next one starts when there is one. */
export interface Page<T, C> {
  readonly items: T[];
  readonly next?: C;
}

/** How deep an index of indexes is followed for its size (OCI allows nesting; real ones have one level). */
const MAX_INDEX_DEPTH = 4;

export class EcrImages {
  constructor(
    private readonly registry: Registry,
    private readonly index: ImageIndex,
  ) {}

  /** ListImages: one id per tag, one per untagged manifest, in (digest, tag) order after `after`. */
  async listIds(repo: string, status: TagStatus, after: ImageIdCursor | undefined, limit: number): Promise<Page<ImageId, ImageIdCursor>> {
    const repoId = await this.index.repositoryId(repo);
    if (repoId === undefined) return { items: [] };
    const rows = await this.index.imageIds(repoId, status, after ?? { digest: '', tag: '' }, limit + 1);
    const items = rows.slice(0, limit).map((r) => (r.tag === null ? { imageDigest: r.digest } : { imageDigest: r.digest, imageTag: r.tag }));
    if (rows.length <= limit) return { items };
    const last = rows[limit - 1]!;
    return { items, next: { digest: last.digest, tag: last.tag ?? '' } };
  }

  /** DescribeImages without ids: the images after `afterDigest`, in digest order. */
  async describePage(repo: string, status: TagStatus, afterDigest: string, limit: number): Promise<Page<ImageDetail, string>> {
    const repoId = await this.index.repositoryId(repo);
    if (repoId === undefined) return { items: [] };
    const rows = await this.index.images(repoId, status, afterDigest, limit + 1);
    const page = rows.slice(0, limit);
    const items = await this.details(repo, repoId, page);
    return rows.length > limit ? { items, next: page[page.length - 1]!.digest } : { items };
  }

  /** DescribeImages with ids: the details of the given manifests, by digest (absent ones are not there). */
  async describe(repo: string, digests: readonly string[]): Promise<Map<string, ImageDetail>> {
    const repoId = await this.index.repositoryId(repo);
    if (repoId === undefined || digests.length === 0) return new Map();
    const rows = [...(await this.index.imagesByDigest(repoId, digests)).values()];
    return new Map((await this.details(repo, repoId, rows)).map((d) => [d.digest, d]));
  }

  /** The manifest a digest names in the repository. */
  async manifest(repo: string, digest: string): Promise<ImageRow | undefined> {
    const repoId = await this.index.repositoryId(repo);
    return repoId === undefined ? undefined : this.index.image(repoId, digest);
  }

  /** The digest a tag points at in the repository. */
  async tagDigest(repo: string, tag: string): Promise<string | undefined> {
    const repoId = await this.index.repositoryId(repo);
    return repoId === undefined ? undefined : this.index.tagDigest(repoId, tag);
  }

  /** The tags of one manifest, in lexical order. */
  async tagsOf(repo: string, digest: string): Promise<string[]> {
    const repoId = await this.index.repositoryId(repo);
    return repoId === undefined ? [] : ((await this.index.tagsOf(repoId, [digest])).get(digest) ?? []);
  }

  /** The indexes of the repository that list the manifest as a child. */
  async parentsOf(repo: string, digest: string): Promise<string[]> {
    const repoId = await this.index.repositoryId(repo);
    return repoId === undefined ? [] : this.index.parentsOf(repoId, digest);
  }

  /** Whether an image of the repository references the blob (its config or a layer). */
  async layerInImage(repo: string, digest: string): Promise<boolean> {
    const repoId = await this.index.repositoryId(repo);
    return repoId !== undefined && (await this.index.blobReferenced(repoId, digest));
  }

  /** ListImageReferrers: the manifests whose subject is `subject`, in digest order after `after`. */
  async referrers(repo: string, subject: string, after: string, limit: number, artifactTypes?: readonly string[]): Promise<Page<ImageReferrer, string>> {
    const repoId = await this.index.repositoryId(repo);
    if (repoId === undefined) return { items: [] };
    const rows = await this.index.referrers(repoId, subject, after, limit + 1, artifactTypes);
    const items = rows.slice(0, limit).map(toReferrer);
    return rows.length > limit ? { items, next: rows[limit - 1]!.digest } : { items };
  }

  /**
   * The images a lifecycle policy evaluates, with their tags, push and last pull times. Two of
   * ECR's documented rules decide what is left out:
   *
   * - "If an image is referenced by a manifest list, it cannot be expired without the manifest
   *   list being deleted first" (the user guide's lifecycle evaluation rules). So the children
   *   of an index in the repository are not candidates (nor counted) while the index is there;
   *   once it is gone, they are ordinary (untagged) images at the next run.
   * - Reference artifacts (signatures, SBOMs: manifests with a `subject`) are cleaned up by the
   *   lifecycle "within 24 hours of the deletion of the subject image", not by the rules. So an
   *   artifact whose subject is in the repository is not a candidate either: it goes with its
   *   subject. One whose subject is gone is listed by `orphanedArtifacts`, for the runner to
   *   remove whatever the rules say.
   */
  async lifecycleImages(repo: string): Promise<ImageFacts[]> {
    const repoId = await this.index.repositoryId(repo);
    if (repoId === undefined) return [];
    const manifests = await this.index.manifestFacts(repoId);
    const children = await this.index.childDigests(repoId);
    const tags = await this.index.allTags(repoId);
    const images: ImageFacts[] = [];
    // One pull time after the other: a repository may hold many images, and a run is no hurry.
    for (const m of manifests) {
      if (children.has(m.digest) || m.subject !== null) continue;
      const lastPulledAt = await this.registry.pulls.lastPulled(repo, m.digest);
      images.push({
        digest: m.digest,
        tags: tags.get(m.digest) ?? [],
        pushedAt: m.createdAt,
        ...(lastPulledAt !== undefined ? { lastPulledAt } : {}),
      });
    }
    return images;
  }

  /**
   * Artifacts whose subject is no longer in the repository (and that no index lists): ECR's
   * lifecycle removes them once their subject is deleted, whatever the policy's rules.
   */
  async orphanedArtifacts(repo: string): Promise<string[]> {
    const repoId = await this.index.repositoryId(repo);
    if (repoId === undefined) return [];
    const manifests = await this.index.manifestFacts(repoId);
    const present = new Set(manifests.map((m) => m.digest));
    const children = await this.index.childDigests(repoId);
    return manifests.filter((m) => m.subject !== null && !present.has(m.subject) && !children.has(m.digest)).map((m) => m.digest);
  }

  /** Details of manifests of one repository: their tags in one query, the children of indexes in a few. */
  private async details(repo: string, repoId: number, rows: readonly ImageRow[]): Promise<ImageDetail[]> {
    if (rows.length === 0) return [];
    const tags = await this.index.tagsOf(repoId, rows.map((r) => r.digest));
    const sizes = await this.sizes(repoId, rows);
    // A page is at most a few hundred rows: their pull times are asked for together.
    const pulled = await Promise.all(rows.map((row) => this.registry.pulls.lastPulled(repo, row.digest)));
    return rows.map((row, i) => {
      const lastPulledAt = pulled[i];
      return {
        digest: row.digest,
        tags: tags.get(row.digest) ?? [],
        sizeInBytes: sizes.get(row.digest) ?? 0,
        pushedAt: row.createdAt,
        manifestMediaType: row.mediaType,
        ...(row.artifactType !== null ? { artifactMediaType: row.artifactType } : {}),
        ...(row.subject !== null ? { subject: row.subject } : {}),
        ...(lastPulledAt !== undefined ? { lastPulledAt } : {}),
      };
    });
  }

  /**
   * `imageSizeInBytes` of each row, from the manifests alone (no store reads): see imageSize.
   * The children of indexes are read from the index in one query per level of nesting.
   */
  private async sizes(repoId: number, rows: readonly ImageRow[]): Promise<Map<string, number>> {
    const docs = new Map<string, ManifestDoc>();
    const doc = (row: ImageRow) => {
      let d = docs.get(row.digest);
      if (!d) docs.set(row.digest, (d = readManifest(row)));
      return d;
    };
    const known = new Map(rows.map((r) => [r.digest, r]));
    let level: ImageRow[] = [...rows];
    for (let depth = 0; depth < MAX_INDEX_DEPTH && level.length > 0; depth++) {
      const wanted = level.flatMap((r) => doc(r).children).filter((d) => !known.has(d));
      const found = [...(await this.index.imagesByDigest(repoId, wanted)).values()];
      for (const r of found) known.set(r.digest, r);
      level = found;
    }
    const sizes = new Map<string, number>();
    for (const row of rows) sizes.set(row.digest, imageSize(row.digest, (d) => (known.has(d) ? doc(known.get(d)!) : undefined)));
    return sizes;
  }
}

/** What imageSize needs of a manifest. */
export interface ManifestDoc {
  readonly isIndex: boolean;
  /** The sizes of its layers (an image manifest). */
  readonly layerSizes: readonly number[];
  /** The digests of its children (an index). */
  readonly children: readonly string[];
}

/**
 * `imageSizeInBytes` as ECR documents it. An image manifest: the sum of its layers' sizes as
 * pushed (compressed, which is why `docker images` shows more); its config and the manifest
 * itself are not counted. A manifest list or index: "the max size of all manifests in the
 * list", each child counted as above (children not in the repository count 0). Nesting is
 * followed MAX_INDEX_DEPTH levels at most.
 */
export function imageSize(digest: string, lookup: (digest: string) => ManifestDoc | undefined, depth = 0): number {
  const doc = lookup(digest);
  if (!doc) return 0;
  if (!doc.isIndex) return doc.layerSizes.reduce((sum, n) => sum + n, 0);
  if (depth >= MAX_INDEX_DEPTH) return 0;
  let max = 0;
  for (const child of doc.children) max = Math.max(max, imageSize(child, lookup, depth + 1));
  return max;
}

/** Reads the sizes and children of a stored manifest (validated when it was pushed). */
export function readManifest(row: Pick<ImageRow, 'mediaType' | 'content'>): ManifestDoc {
  let parsed: unknown;
  try {
    parsed = JSON.parse(row.content.toString('utf8'));
  } catch {
    return { isIndex: false, layerSizes: [], children: [] };
  }
  const doc = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as { layers?: unknown; manifests?: unknown };
  const descriptors = (v: unknown) => (Array.isArray(v) ? v.filter((d): d is Record<string, unknown> => typeof d === 'object' && d !== null) : []);
  if (INDEX_MEDIA_TYPES.has(row.mediaType)) {
    const children = descriptors(doc.manifests).flatMap((d) => (typeof d.digest === 'string' ? [d.digest] : []));
    return { isIndex: true, layerSizes: [], children };
  }
  const layerSizes = descriptors(doc.layers).flatMap((d) => (typeof d.size === 'number' && Number.isSafeInteger(d.size) && d.size >= 0 ? [d.size] : []));
  return { isIndex: false, layerSizes, children: [] };
}

function toReferrer(r: ImageReferrerRow): ImageReferrer {
  return {
    digest: r.digest,
    mediaType: r.mediaType,
    size: r.size,
    ...(r.artifactType !== null ? { artifactType: r.artifactType } : {}),
    ...(r.annotations !== null ? { annotations: JSON.parse(r.annotations) as Record<string, string> } : {}),
  };
}
