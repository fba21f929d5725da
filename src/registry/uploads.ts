import { createHash, randomUUID, type Hash } from 'node:crypto';
import { eventsOf, type EventOrigin, type EventSink } from '../events/events.js';
import { Digest } from '../oci/digest.js';
import { RegistryError, UploadRangeError } from '../oci/errors.js';
import { NotFoundError, UploadOffsetError, UploadTooLargeError, type BlobStore } from '../storage/blob-store.js';
import { keys } from '../storage/keys.js';
import { LockLostError, LockTimeoutError, type IndexLocks, type RegistryIndex } from '../index/contract.js';
import { LocalLocks } from '../index/local-locks.js';
import type { BlobService } from './blobs.js';
import { hashing } from './hashing.js';
import { OPEN_RULES, type RepositoryRules } from './repository-rules.js';

export interface UploadState {
  id: string;
  repo: string;
  /** Bytes received so far. */
  size: number;
}

/** A chunk's declared position, from Content-Range and Content-Length. */
export interface ChunkHeaders {
  range?: { start: number; end: number } | undefined;
  length?: number | undefined;
}

/** A blob written to a staging upload, with the digest and size its bytes turned out to have. */
export interface StagedBlob {
  readonly id: string;
  readonly digest: Digest;
  readonly size: number;
}

interface HashState {
  hash: Hash;
  size: number;
}

/**
 * Resumable blob uploads. Bytes go to the store's upload, hashed as they pass;
 * on completion the digest is checked and the upload becomes a content-addressed
 * blob. Upload sessions are recorded in the store (so reindex finds them) and in
 * the index; the upload's size in the store is the truth about progress.
 */
export class UploadService {
  /**
   * Running SHA-256 states. Without one (after a restart), the digest is
   * computed by reading the upload back when it completes.
   */
  private readonly hashes = new Map<string, HashState>();
  /** Monolithic uploads' temporary sessions, which no other request or node knows of. */
  private readonly local = new LocalLocks();

  constructor(
    private readonly store: BlobStore,
    private readonly index: RegistryIndex,
    private readonly blobs: BlobService,
    private readonly rules: () => RepositoryRules = () => OPEN_RULES,
    /**
     * One request at a time per upload, over every node sharing the index: a chunk that arrives
     * while another is still being written (a retry after the client cut the first, or a second
     * PATCH through another node) waits for it, then is checked against the upload's size.
     */
    private readonly locks: IndexLocks = new LocalLocks(),
    /** How long a request waits for another on the same upload before it gets a 416. */
    private readonly lockWaitMs = UPLOAD_LOCK_WAIT_MS,
  ) {}

  /** Where events go (set by Registry): nowhere unless notifications are on. */
  sink: () => EventSink | undefined = () => undefined;

  /** Opens an upload session; the repository's rules admit the push first (or refuse it). */
  async start(repo: string, signal?: AbortSignal): Promise<UploadState> {
    await this.rules().admitPush(repo);
    const id = randomUUID();
    const now = Date.now();
    await this.store.createUpload(id, Buffer.from(JSON.stringify({ repository: repo, createdAt: now })), signal);
    try {
      await this.index.insertUpload(id, repo, now);
    } catch (err) {
      await this.store.cancelUpload(id); // no session without its row (the index may be full)
      throw err;
    }
    this.hashes.set(id, { hash: createHash('sha256'), size: 0 });
    return { id, repo, size: 0 };
  }

  /** Where the upload stands, once any write in flight has settled. */
  async status(repo: string, id: string, signal?: AbortSignal): Promise<UploadState> {
    return this.exclusive(repo, id, signal, async (held) => ({ id, repo, size: await this.currentSize(repo, id, held) }));
  }

  /** Appends a chunk (PATCH). */
  async append(
    repo: string,
    id: string,
    body: AsyncIterable<Uint8Array>,
    chunk: ChunkHeaders,
    signal?: AbortSignal,
  ): Promise<UploadState> {
    return this.exclusive(repo, id, signal, async (held) => {
      const size = await this.appendChunk(repo, id, body, chunk, held);
      await this.index.touchUpload(id);
      return { id, repo, size };
    });
  }

  /** Ends an upload (PUT ?digest=), appending a last chunk when there is one. */
  async complete(
    repo: string,
    id: string,
    digest: Digest,
    body: AsyncIterable<Uint8Array> | undefined,
    chunk: ChunkHeaders,
    signal?: AbortSignal,
    origin?: EventOrigin,
  ): Promise<{ digest: Digest; size: number }> {
    return this.exclusive(repo, id, signal, async (held) => {
      const size = body ? await this.appendChunk(repo, id, body, chunk, held) : await this.currentSize(repo, id, held);
      const actual = await this.digestOf(id, size, digest.algorithm, held);
      if (!actual.equals(digest)) {
        await this.discard(id);
        throw digestMismatch(digest, actual);
      }
      // The bytes just checked are the upload's only while the lock is held.
      if (held.aborted) throw new LockLostError(lockName(id));
      await this.commit(repo, id, digest, size, held, origin);
      return { digest, size };
    });
  }

  /** A whole blob in one request (POST ?digest=); the repository's rules admit the push first. */
  async monolithic(
    repo: string,
    digest: Digest,
    body: AsyncIterable<Uint8Array>,
    length: number | undefined,
    signal?: AbortSignal,
    origin?: EventOrigin,
  ): Promise<{ digest: Digest; size: number }> {
    await this.rules().admitPush(repo);
    // A temporary upload without a session row: if the process dies, purging removes it by age.
    const id = randomUUID();
    return this.local.run(id, async () => {
      try {
        await this.store.createUpload(id, undefined, signal);
        const hash = createHash(digest.algorithm);
        const size = await this.store.appendUpload(id, 0, hashing(body, hash, { bytes: 0, dropped: 0 }), signal);
        if (length !== undefined && size !== length) {
          throw new RegistryError('SIZE_INVALID', undefined, { detail: { expected: length, received: size } });
        }
        const actual = Digest.fromHash(digest.algorithm, hash);
        if (!actual.equals(digest)) throw digestMismatch(digest, actual);
        await this.commit(repo, id, digest, size, signal, origin);
        return { digest, size };
      } catch (err) {
        await this.store.cancelUpload(id);
        throw err instanceof UploadTooLargeError ? tooLarge(err) : err;
      }
    });
  }

  /**
   * Stages a blob whose digest is not known beforehand (an entry of an image archive): an upload
   * without a session row, hashed as it is written. Nothing links it until `commitStaged`; if the
   * process dies first, purging removes it by age. The caller discards it when it is not wanted.
   */
  async stage(body: AsyncIterable<Uint8Array>, algorithm: Digest['algorithm'], signal?: AbortSignal): Promise<StagedBlob> {
    const id = randomUUID();
    const hash = createHash(algorithm);
    try {
      await this.store.createUpload(id, undefined, signal);
      const size = await this.store.appendUpload(id, 0, hashing(body, hash, { bytes: 0, dropped: 0 }), signal);
      return { id, digest: Digest.fromHash(algorithm, hash), size };
    } catch (err) {
      await this.store.cancelUpload(id);
      throw err instanceof UploadTooLargeError ? tooLarge(err) : err;
    }
  }

  /** A staged blob's bytes, read back (a manifest or config of an archive, once it is known to be one). */
  async readStaged(id: string, signal?: AbortSignal): Promise<AsyncIterable<unknown>> {
    return this.readUpload(id, signal);
  }

  /** Drops a staged blob (an archive refused, or an entry no image uses). */
  async discardStaged(id: string): Promise<void> {
    await this.store.cancelUpload(id);
  }

  /**
   * Moves a staged blob into place (unless the content is already there) and links it into each
   * repository; the repositories' rules admit the push first.
   */
  async commitStaged(repos: readonly string[], blob: StagedBlob, signal?: AbortSignal, origin?: EventOrigin): Promise<void> {
    for (const repo of new Set(repos)) await this.rules().admitPush(repo);
    const [first, ...others] = [...new Set(repos)];
    if (first === undefined) return this.discardStaged(blob.id);
    await this.commit(first, blob.id, blob.digest, blob.size, signal, origin);
    for (const repo of others) {
      await this.blobs.claim(blob.digest.toString(), blob.size, signal);
      try {
        const events = eventsOf(this.sink(), origin, 'push', [{ kind: 'blob', repository: repo, digest: blob.digest.toString(), size: blob.size }]);
        await this.blobs.link(repo, blob.digest, blob.size, events);
      } finally {
        await this.blobs.release(blob.digest.toString());
      }
    }
  }

  async cancel(repo: string, id: string): Promise<void> {
    await this.exclusive(repo, id, undefined, () => this.discard(id));
  }

  /**
   * Ends every upload session of a repository (it is being deleted), each under its lock, so
   * that none completes into the repository afterwards. Returns how many were ended.
   */
  async cancelRepository(repo: string): Promise<number> {
    let ended = 0;
    for (const id of await this.index.uploadsOf(repo)) {
      await this.locks.run(lockName(id), async () => {
        if ((await this.index.upload(id))?.repository !== repo) return; // it ended while this waited
        await this.discard(id);
        ended++;
      });
    }
    return ended;
  }

  /** Removes uploads idle since before `cutoff`; returns their ids. */
  async purge(cutoff: Date, dryRun = false): Promise<string[]> {
    const stale = new Set(await this.index.staleUploads(cutoff.getTime()));
    for await (const u of this.store.listUploads()) {
      // Uploads without a session row (monolithic pushes cut short) go by their age in the store.
      if (u.modified < cutoff && !(await this.index.upload(u.id))) stale.add(u.id);
    }
    const purged: string[] = [];
    for (const id of stale) {
      if (dryRun) {
        purged.push(id);
        continue;
      }
      // Under the upload's lock, and only if it is still idle: a request may have touched it since.
      await this.locks.run(lockName(id), async () => {
        const row = await this.index.upload(id);
        if (row && row.updatedAt >= cutoff.getTime()) return;
        await this.discard(id);
        purged.push(id);
      });
    }
    return purged;
  }

  // ---- internals ----

  private async session(repo: string, id: string): Promise<void> {
    // No session id holds a NUL (PostgreSQL could not even be asked for one).
    if (id.includes('\u0000')) throw uploadUnknown(id);
    const row = await this.index.upload(id);
    if (!row || row.repository !== repo) throw uploadUnknown(id);
  }

  private async currentSize(repo: string, id: string, signal?: AbortSignal): Promise<number> {
    await this.session(repo, id);
    const size = await this.store.uploadSize(id, signal);
    if (size === null) throw uploadUnknown(id);
    return size;
  }

  private async appendChunk(
    repo: string,
    id: string,
    body: AsyncIterable<Uint8Array>,
    chunk: ChunkHeaders,
    signal?: AbortSignal,
  ): Promise<number> {
    // A chunk with a Content-Range may not carry more than it declares: the
    // declared bytes are kept, those beyond are refused.
    const declared = chunk.range ? chunk.range.end - chunk.range.start + 1 : undefined;
    if (declared !== undefined && chunk.length !== undefined && chunk.length !== declared) {
      throw new RegistryError('SIZE_INVALID', 'Content-Length does not match Content-Range', {
        detail: { contentLength: chunk.length, contentRange: declared },
      });
    }
    // The running hash is fed as the chunk passes, and kept only if it turns
    // out to have covered exactly the bytes before the chunk; otherwise (after a
    // restart, or after a chunk that failed) the digest is computed from the
    // stored bytes when the upload completes. The store checks the chunk's
    // position (a chunk without Content-Range goes at the end).
    const cached = this.hashes.get(id);
    this.hashes.delete(id); // re-added only if the append completes
    const counter = { bytes: 0, dropped: 0 };
    let newSize: number;
    try {
      newSize = await this.store.appendUpload(id, chunk.range?.start, hashing(body, cached?.hash, counter, declared), signal);
    } catch (err) {
      if (err instanceof UploadOffsetError) {
        if (cached) this.hashes.set(id, cached); // refused before a byte was read
        throw rangeMismatch(repo, id, err.expected);
      }
      if (err instanceof NotFoundError) throw uploadUnknown(id);
      if (err instanceof UploadTooLargeError) throw tooLarge(err);
      throw err;
    }
    if (cached && cached.size === newSize - counter.bytes) this.hashes.set(id, { hash: cached.hash, size: newSize });
    if (counter.dropped > 0) throw chunkLengthError(declared!, 'longer');
    if (declared !== undefined && counter.bytes !== declared) throw chunkLengthError(declared, 'shorter');
    return newSize;
  }

  /** The SHA-256 state for the first `size` bytes of an upload, recomputed if not cached. */
  private async hashState(id: string, size: number, signal?: AbortSignal): Promise<HashState> {
    const cached = this.hashes.get(id);
    if (cached && cached.size === size) return cached;
    const hash = createHash('sha256');
    let read = 0;
    for await (const chunk of await this.readUpload(id, signal)) {
      hash.update(chunk as Buffer);
      read += (chunk as Buffer).length;
    }
    if (read !== size) throw new Error(`upload ${id} changed while it was read`);
    return { hash, size };
  }

  private async digestOf(id: string, size: number, algorithm: Digest['algorithm'], signal?: AbortSignal): Promise<Digest> {
    if (algorithm === 'sha256') {
      const state = await this.hashState(id, size, signal);
      return Digest.fromHash('sha256', state.hash.copy());
    }
    const hash = createHash(algorithm);
    for await (const chunk of await this.readUpload(id, signal)) hash.update(chunk as Buffer);
    return Digest.fromHash(algorithm, hash);
  }

  private async readUpload(id: string, signal?: AbortSignal): Promise<AsyncIterable<unknown>> {
    try {
      return await this.store.readUpload(id, signal);
    } catch (err) {
      if (err instanceof NotFoundError) throw uploadUnknown(id);
      throw err;
    }
  }

  /** Moves a verified upload into place (unless the content is already there) and links it. */
  private async commit(repo: string, id: string, digest: Digest, size: number, signal?: AbortSignal, origin?: EventOrigin): Promise<void> {
    const key = keys.blob(digest);
    // Held from here until it is linked: the collector neither deletes the bytes found in place nor
    // those about to be written (and, while it is deleting them, this waits for it to finish).
    await this.blobs.claim(digest.toString(), size, signal);
    try {
      const existing = await this.store.stat(key, signal);
      if (existing && existing.size === size) {
        await this.store.cancelUpload(id);
      } else {
        await this.store.commitUpload(id, key, signal);
      }
    } catch (err) {
      await this.blobs.release(digest.toString());
      if (err instanceof NotFoundError) throw uploadUnknown(id);
      throw err;
    }
    // The upload is gone from the store: its session ends here, even if the link fails
    // (the blob is then content no repository holds, until a push links it or it is collected).
    await this.forget(id);
    try {
      const events = eventsOf(this.sink(), origin, 'push', [{ kind: 'blob', repository: repo, digest: digest.toString(), size }]);
      await this.blobs.link(repo, digest, size, events);
    } finally {
      // Linked (and touched: the grace window runs from here) or refused: the hold ends.
      await this.blobs.release(digest.toString());
    }
  }

  /** Ends an upload: its bytes and record in the store, then its session. */
  private async discard(id: string): Promise<void> {
    await this.store.cancelUpload(id);
    await this.forget(id);
  }

  /** Drops what is kept about an upload that the store no longer has. */
  private async forget(id: string): Promise<void> {
    this.hashes.delete(id);
    await this.index.deleteUpload(id);
  }

  /**
   * Runs `fn` holding the upload's lock. `fn` gets a signal that aborts when the request's does or
   * when the lock is lost (another node may then hold the upload): the store stops at it.
   */
  private async exclusive<T>(repo: string, id: string, signal: AbortSignal | undefined, fn: (held: AbortSignal) => Promise<T>): Promise<T> {
    await this.session(repo, id);
    try {
      return await this.locks.run(
        lockName(id),
        async (lost) => {
          await this.session(repo, id); // it may have ended while this request waited
          return fn(signal ? AbortSignal.any([signal, lost]) : lost);
        },
        this.lockWaitMs,
      );
    } catch (err) {
      if (!(err instanceof LockTimeoutError)) throw err;
      // Another request has held the upload all this while: where it stands now is all this one can be told.
      throw rangeMismatch(repo, id, (await this.store.uploadSize(id)) ?? 0);
    }
  }
}

/** How long a request waits for another one on the same upload (a chunk in flight) before a 416. */
export const UPLOAD_LOCK_WAIT_MS = 30_000;

function lockName(id: string): string {
  return `upload:${id}`;
}

function chunkLengthError(declared: number, how: 'longer' | 'shorter'): RegistryError {
  return new RegistryError('SIZE_INVALID', `the chunk is ${how} than its Content-Range says`, {
    detail: { contentRange: declared },
  });
}

function tooLarge(err: UploadTooLargeError): RegistryError {
  return new RegistryError('SIZE_INVALID', err.message, { detail: { limit: err.limit } });
}

function digestMismatch(expected: Digest, actual: Digest): RegistryError {
  return new RegistryError('DIGEST_INVALID', 'provided digest did not match uploaded content', {
    detail: { expected: expected.toString(), actual: actual.toString() },
  });
}

export function uploadUnknown(id: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_UNKNOWN', undefined, { detail: { uuid: id } });
}

/** The 416 a chunk gets when it does not continue the upload. */
export function rangeMismatch(repo: string, id: string, size: number): RegistryError {
  return new UploadRangeError(repo, id, size);
}
