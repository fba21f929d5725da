/**
 * Imports image archives: the archive is read into staging (src/archive/reader.ts), read as
 * images (layout.ts), checked whole (digests, sizes, references, names, the caller's push right
 * on each repository, the repositories' rules), and only then committed through the same use
 * cases as a push: blobs linked as uploads are, manifests put as /v2/ puts them. Whatever is not
 * committed is discarded; a refused archive leaves nothing.
 */
import type { ArchivesConfig } from '../config/config.js';
import type { EventOrigin } from '../events/events.js';
import { RegistryError } from '../oci/errors.js';
import type { Registry } from '../registry/registry.js';
import { planArchive, type ArchiveImage, type ImageName, type ManifestToStore } from './layout.js';
import { ArchiveContents, archiveInvalid, discardAll, readArchive, type StagedFile } from './reader.js';

export interface ImportOptions {
  /** The repository every image goes to (the form's `repository` field); else the archive's names. */
  repository?: string | undefined;
  /** The tag (the form's `tag` field), for an archive of one image. */
  tag?: string | undefined;
  /** Whether the caller may push to a repository (decided in src/auth/). */
  mayPush(repository: string): boolean;
  origin?: EventOrigin | undefined;
  signal?: AbortSignal | undefined;
}

export interface ImportedImage {
  repository: string;
  tag?: string;
  digest: string;
  mediaType: string;
}

/** What goes into one repository. */
interface RepositoryPlan {
  tags: Map<string, ManifestToStore>;
  /** Manifests in the order they are put (children before their index). */
  manifests: ManifestToStore[];
  untagged: ManifestToStore[];
}

export class ArchiveImporter {
  constructor(
    private readonly registry: Registry,
    private readonly limits: ArchivesConfig,
    private readonly manifestLimit: number,
  ) {}

  /** Reads an archive into staging; the caller then commits it or discards it. */
  read(source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<ArchiveContents> {
    return readArchive(source, this.registry.uploads, { maxBytes: this.limits.maxBytes, maxEntries: this.limits.maxEntries }, signal);
  }

  /** Drops everything an archive staged. */
  discard(contents: ArchiveContents): Promise<void> {
    return discardAll(this.registry.uploads, contents);
  }

  /** Checks the staged archive as a whole and commits its images; what is left staged is discarded. */
  async commit(contents: ArchiveContents, options: ImportOptions): Promise<ImportedImage[]> {
    const uploads = this.registry.uploads;
    const committed = new Set<string>();
    try {
      const images = await planArchive(contents, (file, limit) => this.readStaged(file, limit, options.signal), this.manifestLimit);
      const { plans, repositories } = this.assign(images, options);
      for (const repository of plans.keys()) {
        if (!options.mayPush(repository)) throw pushDenied(repository);
      }
      // Blobs that the manifests name and the archive lacks: the repository must hold them already.
      const blobRepositories = new Map<StagedFile, Set<string>>();
      for (const image of images) {
        for (const repository of repositories.get(image)!) {
          for (const file of image.blobs) {
            const repos = blobRepositories.get(file) ?? new Set<string>();
            repos.add(repository);
            blobRepositories.set(file, repos);
          }
          for (const absent of image.absent) {
            if ((await this.registry.index.linkedBlobSize(repository, absent.digest.toString())) === undefined) {
              throw archiveInvalid(`a manifest names the blob ${absent.digest}, which is neither in the archive nor in ${repository}`, {
                digest: absent.digest.toString(),
              });
            }
          }
        }
      }

      // Last, the repositories' rules (ECR's: a push may create the repository; immutable tags).
      for (const [repository, plan] of plans) {
        await this.registry.rules.admitPush(repository);
        for (const [tag, m] of plan.tags) await this.registry.manifests.checkTags(repository, m.digest, [tag]);
      }

      // The whole archive is valid: commit, blobs first, then each repository's manifests.
      for (const [file, repos] of blobRepositories) {
        const blob = file.staged ?? (await uploads.stage(once(file.content!), file.digest.algorithm, options.signal));
        try {
          await uploads.commitStaged([...repos], blob, options.signal, options.origin);
        } catch (err) {
          await uploads.discardStaged(blob.id);
          throw err;
        }
        committed.add(blob.id);
      }
      const imported: ImportedImage[] = [];
      for (const [repository, plan] of plans) {
        for (const m of plan.manifests) {
          const tags = [...plan.tags].filter(([, t]) => t === m).map(([tag]) => tag);
          const ref = tags[0] !== undefined ? { tag: tags[0] } : { digest: m.digest };
          await this.registry.manifests.put(repository, ref, m.body, m.mediaType, tags.slice(1), options.origin);
          for (const tag of tags) imported.push({ repository, tag, digest: m.digest.toString(), mediaType: m.mediaType });
          if (tags.length === 0 && plan.untagged.includes(m)) imported.push({ repository, digest: m.digest.toString(), mediaType: m.mediaType });
        }
      }
      return imported;
    } finally {
      for (const blob of contents.staged()) {
        if (!committed.has(blob.id)) await uploads.discardStaged(blob.id);
      }
      contents.files.clear();
    }
  }

  /**
   * Which repository and tags each image goes to (the form's fields, else the archive's names):
   * what each repository gets, and the repositories of each image.
   */
  private assign(images: ArchiveImage[], options: ImportOptions): { plans: Map<string, RepositoryPlan>; repositories: Map<ArchiveImage, Set<string>> } {
    if (options.tag !== undefined && images.length !== 1) {
      throw archiveInvalid(`it holds ${images.length} images: the tag field names one image, so leave it out`);
    }
    const plans = new Map<string, RepositoryPlan>();
    const repositories = new Map<ArchiveImage, Set<string>>();
    for (const image of images) {
      const top = image.manifests[image.manifests.length - 1]!;
      let names: ImageName[] = image.names;
      if (options.repository !== undefined) names = names.length > 0 ? names.map((n) => ({ ...n, repository: options.repository! })) : [{ repository: options.repository }];
      if (options.tag !== undefined) names = [{ repository: names[0]?.repository ?? '', tag: options.tag }];
      if (names.length === 0 || names.some((n) => n.repository === '')) {
        throw archiveInvalid(`it does not name the repository of ${top.digest}: give the repository field`);
      }
      for (const name of names) {
        const plan: RepositoryPlan = plans.get(name.repository) ?? { tags: new Map(), manifests: [], untagged: [] };
        plans.set(name.repository, plan);
        for (const m of image.manifests) if (!plan.manifests.some((p) => p.digest.equals(m.digest))) plan.manifests.push(m);
        if (name.tag === undefined) {
          if (!plan.untagged.includes(top)) plan.untagged.push(top);
        } else {
          const earlier = plan.tags.get(name.tag);
          if (earlier && !earlier.digest.equals(top.digest)) throw archiveInvalid(`it gives the tag ${name.repository}:${name.tag} to two images`);
          plan.tags.set(name.tag, top);
        }
      }
      repositories.set(image, new Set(names.map((n) => n.repository)));
    }
    return { plans, repositories };
  }

  /** A staged file's bytes (kept in memory, or read back from staging), at most `limit` of them. */
  private async readStaged(file: StagedFile, limit: number, signal?: AbortSignal): Promise<Buffer> {
    if (file.size > limit) throw archiveInvalid(`${file.path} is larger than ${limit} bytes`);
    if (file.content) return file.content;
    const chunks: Buffer[] = [];
    for await (const chunk of await this.registry.uploads.readStaged(file.staged!.id, signal)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }
}

async function* once(content: Buffer): AsyncIterable<Uint8Array> {
  yield content;
}

/** The refusal of an import into a repository the caller may not push to (403, naming it as the guard does). */
export function pushDenied(repository: string): RegistryError {
  return new RegistryError('DENIED', `requested access to the resource is denied: no push to ${repository}`, {
    detail: [{ Type: 'repository', Name: repository, Action: 'push' }],
  });
}
