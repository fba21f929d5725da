import type { Readable } from 'node:stream';
import { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { NotFoundError, type BlobStore, type ByteRange, type ObjectHandle } from '../storage/blob-store.js';
import { keys } from '../storage/keys.js';
import type { RegistryIndex } from '../index/registry-index.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** Reading, linking and unlinking blobs of a repository. */
export class BlobService {
  constructor(
    private readonly store: BlobStore,
    private readonly index: RegistryIndex,
  ) {}

  /** The blob as the repository sees it; BLOB_UNKNOWN unless it was pushed or mounted there. */
  stat(repo: string, digest: Digest): BlobInfo {
    const size = this.index.linkedBlobSize(repo, digest.toString());
    if (size === undefined) throw blobUnknown(digest);
    return { digest, size };
  }

  /**
   * The blob's bytes: opened, when the store can (the filesystem), for reads
   * into the caller's buffers; else as a stream of the range asked for.
   */
  async open(digest: Digest, range: ByteRange | undefined, signal?: AbortSignal): Promise<{ handle: ObjectHandle } | { stream: Readable }> {
    try {
      if (this.store.openObject) return { handle: await this.store.openObject(keys.blob(digest)) };
      return { stream: await this.store.read(keys.blob(digest), range, signal) };
    } catch (err) {
      if (err instanceof NotFoundError) throw blobUnknown(digest);
      throw err;
    }
  }

  /** A URL the client can fetch the blob from directly, when the store offers one. */
  async directUrl(digest: Digest): Promise<string | undefined> {
    return this.store.directUrl?.(keys.blob(digest));
  }

  /**
   * Links an existing blob into `repo` (a cross-repository mount). With `from`,
   * the blob must be linked there; without it, or when it is not there, a blob
   * linked into any repository is mounted (automatic mount). Returns null when
   * no repository has the blob.
   */
  async mount(repo: string, digest: Digest, from: string | undefined): Promise<BlobInfo | null> {
    const d = digest.toString();
    const size = (from !== undefined ? this.index.linkedBlobSize(from, d) : undefined) ?? this.index.anyLinkedBlobSize(d);
    if (size === undefined) return null;
    await this.link(repo, digest, size);
    return { digest, size };
  }

  /** Records in the store, then in the index, that `repo` holds the blob. */
  async link(repo: string, digest: Digest, size: number): Promise<void> {
    await this.store.put(keys.layerLink(repo, digest), new Uint8Array(0));
    this.index.addBlob(repo, digest.toString(), size);
  }

  /** Removes the blob from the repository (the content stays for other repositories). */
  async unlink(repo: string, digest: Digest): Promise<void> {
    if (this.index.linkedBlobSize(repo, digest.toString()) === undefined) throw blobUnknown(digest);
    await this.store.delete(keys.layerLink(repo, digest));
    this.index.unlinkBlob(repo, digest.toString());
  }
}

export function blobUnknown(digest: Digest): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', undefined, { detail: { digest: digest.toString() } });
}
