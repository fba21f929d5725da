import { Readable } from 'node:stream';
import { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { NotFoundError, type BlobStore, type ByteRange, type ObjectHandle } from '../storage/blob-store.js';
import { keys } from '../storage/keys.js';
import { BlobDeletingError, type GcIndex, type RegistryIndex } from '../index/contract.js';
import { OPEN_RULES, type RepositoryRules } from './repository-rules.js';
import { eventsOf, type EventOrigin, type EventSink } from '../events/events.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

/** The size of each read of a blob streamed from a file handle. */
const READ_CHUNK = 1024 * 1024;
/** How many repositories an automatic mount looks through for a readable source: pages × page size. */
const MOUNT_SOURCE_PAGE = 200;
const MOUNT_SOURCE_PAGES = 50;

/**
 * How long a write holds the blob it is writing (an upload's commit, a manifest's bytes): the
 * collector does not mark it meanwhile. Far longer than a commit takes; the write's release ends
 * it sooner (this bounds the hold of a writer that died).
 */
export const WRITE_HOLD_MS = 15 * 60_000;
/** How long a write waits for the collector to finish deleting the blob it writes, before a 503. */
export const CLAIM_WAIT_MS = 30_000;

/** Reading, linking and unlinking blobs of a repository. */
export class BlobService {
  constructor(
    private readonly store: BlobStore,
    private readonly index: RegistryIndex,
    private readonly rules: () => RepositoryRules = () => OPEN_RULES,
    private readonly gc?: GcIndex,
  ) {}

  /** Where events go (set by Registry): nowhere unless notifications are on. */
  sink: () => EventSink | undefined = () => undefined;

  /**
   * Holds a blob about to be written to the store, so that the collector leaves it alone until it
   * is linked (or the manifest that is its bytes is recorded). While the collector is deleting it,
   * waits for the deletion to end (the bytes are then written anew), at most CLAIM_WAIT_MS, then
   * throws BlobDeletingError (a 503: the client retries).
   */
  async claim(digest: string, size: number, signal?: AbortSignal): Promise<void> {
    if (!this.gc) return;
    const deadline = Date.now() + CLAIM_WAIT_MS;
    for (let attempt = 0; ; attempt++) {
      const now = Date.now();
      if (await this.gc.claimBlob(digest, size, now, now + WRITE_HOLD_MS)) return;
      if (now >= deadline) throw new BlobDeletingError(digest);
      await sleep(Math.min(25 * 2 ** attempt, 500), signal);
    }
  }

  /** Ends the hold of a write, linked or failed (with the last hold, the collector may judge the blob again). */
  async release(digest: string): Promise<void> {
    await this.gc?.releaseBlob(digest);
  }

  /** The blob as the repository sees it; BLOB_UNKNOWN unless it was pushed or mounted there. */
  async stat(repo: string, digest: Digest): Promise<BlobInfo> {
    const size = await this.index.linkedBlobSize(repo, digest.toString());
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

  /**
   * The whole blob as one stream, from the store's handle (read in 1 MiB chunks) or its stream:
   * for a caller that pipes it on (an archive export) rather than answering a ranged GET.
   */
  async stream(digest: Digest, size: number, signal?: AbortSignal): Promise<Readable> {
    const opened = await this.open(digest, undefined, signal);
    if ('stream' in opened) return opened.stream;
    const { handle } = opened;
    async function* chunks(): AsyncIterable<Buffer> {
      try {
        for (let position = 0; position < size; ) {
          const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, size - position));
          const n = await handle.read(buffer, buffer.length, position);
          if (n === 0) throw new Error(`the blob ${digest} ended at byte ${position} of ${size}`);
          position += n;
          yield n === buffer.length ? buffer : buffer.subarray(0, n);
        }
      } finally {
        await handle.close();
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  /**
   * A small blob of the repository (a config) read whole; undefined when it is larger than
   * `limit`. BLOB_UNKNOWN unless the repository holds it.
   */
  async readSmall(repo: string, digest: Digest, limit: number, signal?: AbortSignal): Promise<Buffer | undefined> {
    const { size } = await this.stat(repo, digest);
    if (size > limit) return undefined;
    const chunks: Buffer[] = [];
    for await (const chunk of await this.stream(digest, size, signal)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** A URL the client can fetch the blob from directly, when the store offers one. */
  async directUrl(digest: Digest): Promise<string | undefined> {
    return this.store.directUrl?.(keys.blob(digest));
  }

  /**
   * Links an existing blob into `repo` (a cross-repository mount). With `from`,
   * the blob must be linked there; without it, or when it is not there, a blob
   * linked into another repository is mounted (automatic mount). Only
   * repositories that `mayRead` accepts are sources (the caller's pull right);
   * without it, any is. Returns null when no readable repository has the blob.
   * A mount is a push: the repository's rules admit it first (or refuse it), found or not.
   */
  async mount(
    repo: string,
    digest: Digest,
    from: string | undefined,
    mayRead?: (repo: string) => boolean,
    origin?: EventOrigin,
  ): Promise<BlobInfo | null> {
    await this.rules().admitPush(repo);
    const d = digest.toString();
    let size = from !== undefined && (!mayRead || mayRead(from)) ? await this.index.linkedBlobSize(from, d) : undefined;
    const source = size !== undefined ? from : undefined;
    size ??= mayRead ? await this.readableLinkedSize(d, mayRead) : await this.index.anyLinkedBlobSize(d);
    if (size === undefined) return null;
    const subject = { kind: 'blob', repository: repo, digest: d, size, ...(source !== undefined ? { fromRepository: source } : {}) } as const;
    try {
      await this.link(repo, digest, size, eventsOf(this.sink(), origin, 'mount', [subject]));
    } catch (err) {
      // The collector is deleting it: the client uploads it instead.
      if (err instanceof BlobDeletingError) return null;
      throw err;
    }
    return { digest, size };
  }

  /** The blob's size if a repository the caller may read holds it (looking at a bounded number of them). */
  private async readableLinkedSize(digest: string, mayRead: (repo: string) => boolean): Promise<number | undefined> {
    let after = '';
    for (let page = 0; page < MOUNT_SOURCE_PAGES; page++) {
      const rows = await this.index.blobRepositories(digest, after, MOUNT_SOURCE_PAGE);
      const found = rows.find((r) => mayRead(r.name));
      if (found) return found.size;
      if (rows.length < MOUNT_SOURCE_PAGE) return undefined;
      after = rows[rows.length - 1]!.name;
    }
    return undefined;
  }

  /** Records in the store, then in the index, that `repo` holds the blob (with the events of the change, if any). */
  async link(repo: string, digest: Digest, size: number, events?: readonly string[]): Promise<void> {
    const link = keys.layerLink(repo, digest);
    await this.store.put(link, new Uint8Array(0));
    // Admitted again just before the index records it: an upload that began before its
    // repository was deleted must not bring the repository back.
    try {
      await this.rules().admitPush(repo);
    } catch (err) {
      await this.store.delete(link);
      throw err;
    }
    try {
      await this.index.addBlob(repo, digest.toString(), size, undefined, events);
      if (events) this.sink()?.written();
    } catch (err) {
      // Being deleted (a mount racing the collector): no link object may outlive the refusal.
      if (err instanceof BlobDeletingError) await this.store.delete(link);
      throw err;
    }
  }

  /** Removes the blob from the repository (the content stays for other repositories). */
  async unlink(repo: string, digest: Digest, origin?: EventOrigin): Promise<void> {
    const d = digest.toString();
    if ((await this.index.linkedBlobSize(repo, d)) === undefined) throw blobUnknown(digest);
    await this.store.delete(keys.layerLink(repo, digest));
    const events = eventsOf(this.sink(), origin, 'delete', [{ kind: 'blob', repository: repo, digest: d }]);
    if ((await this.index.unlinkBlob(repo, d, events)) && events) this.sink()?.written();
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function blobUnknown(digest: Digest): RegistryError {
  return new RegistryError('BLOB_UNKNOWN', undefined, { detail: { digest: digest.toString() } });
}
