import { randomUUID } from 'node:crypto';
import { mkdir, open, opendir, readFile, rename, rm, rmdir, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  NotFoundError,
  UploadOffsetError,
  type BlobStore,
  type ByteRange,
  type ObjectHandle,
  type ObjectInfo,
} from './blob-store.js';

const UPLOAD_ID_RE = /^[A-Za-z0-9-]{1,64}$/;

/** Reads of blobs go in chunks this large: fewer trips through the thread pool per byte served. */
const READ_CHUNK = 1024 * 1024;
/** How much an upload buffers before its writes wait (backpressure to the client). */
const WRITE_BUFFER = 2 * 1024 * 1024;
/**
 * While an upload streams in, its written bytes are flushed to disk in the
 * background every this many bytes, so that the flush at the end of the
 * request is short and the disk works while the network does.
 */
const SYNC_EVERY = 32 * 1024 * 1024;
/** How many files deleteMany unlinks at once: enough to keep the disk busy, few enough to leave it to others. */
const DELETE_CONCURRENCY = 16;

function isNotFound(err: unknown): boolean {
  // EISDIR: the key names a folder of other keys, not an object.
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'ENOENT' || code === 'EISDIR';
}

/** Opens an upload's data file; NotFoundError when there is no such upload. */
async function openUpload(path: string, id: string, flags: 'r' | 'r+'): Promise<FileHandle> {
  try {
    return await open(path, flags);
  } catch (err) {
    if (isNotFound(err)) throw new NotFoundError(`uploads/${id}`);
    throw err;
  }
}

/**
 * A blob store on a local filesystem. Objects are files named by their key;
 * writes go to a temporary file that is fsync'd and renamed into place, and
 * the rename is made durable by an fsync of its folder.
 *
 * An upload's bytes reach the disk behind the client: every SYNC_EVERY bytes
 * while an append streams in, and once more after it, without holding up its
 * answer (the next append waits for that flush, so at most two appends' bytes
 * wait for the disk). A commit waits for the last flush, so a blob is on disk
 * before the client hears it is stored.
 */
export class FsBlobStore implements BlobStore {
  private readonly tmpDir: string;
  private readonly uploadsDir: string;
  /**
   * The flush that follows an upload's last append, while the upload lasts:
   * it resolves to true once every byte is on disk. An upload without one (its
   * last append failed, or it is from before a restart) is flushed at commit.
   */
  private readonly flushes = new Map<string, Promise<true>>();
  /**
   * Uploads whose flush failed. Linux may report the next fdatasync of such a
   * file as a success although bytes were lost, so these uploads are not
   * committed; the client starts again.
   */
  private readonly failed = new Map<string, unknown>();

  constructor(readonly root: string) {
    this.tmpDir = join(root, '_tmp');
    this.uploadsDir = join(root, 'uploads');
  }

  /** Creates the folders; temporary files left by a crash are removed. */
  async init(): Promise<void> {
    await rm(this.tmpDir, { recursive: true, force: true });
    await mkdir(this.tmpDir, { recursive: true });
    await mkdir(this.uploadsDir, { recursive: true });
  }

  private path(key: string): string {
    if (key.split('/').some((p) => p === '..' || p === '.' || p === '') || key.includes('\0')) {
      throw new Error(`invalid storage key ${JSON.stringify(key)}`);
    }
    return join(this.root, key);
  }

  private uploadPath(id: string): string {
    if (!UPLOAD_ID_RE.test(id)) throw new NotFoundError(`uploads/${id}`);
    return join(this.uploadsDir, id, 'data');
  }

  async stat(key: string): Promise<ObjectInfo | null> {
    try {
      const s = await stat(this.path(key));
      return s.isFile() ? { key, size: s.size, modified: s.mtime } : null;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async read(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const { fh } = await this.openFile(key);
    return fh.createReadStream({
      ...(range ? { start: range.start, end: range.end } : {}),
      highWaterMark: READ_CHUNK,
      ...(signal ? { signal } : {}),
    });
  }

  async openObject(key: string): Promise<ObjectHandle> {
    const { fh, size } = await this.openFile(key);
    return {
      size,
      read: async (buffer, length, position) => (await fh.read(buffer, 0, length, position)).bytesRead,
      close: () => fh.close(),
    };
  }

  /** Opens an object's file for reading; NotFoundError when there is none (or a folder). */
  private async openFile(key: string): Promise<{ fh: FileHandle; size: number }> {
    let fh: FileHandle;
    try {
      fh = await open(this.path(key), 'r');
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(key);
      throw err;
    }
    try {
      const info = await fh.stat();
      if (!info.isFile()) throw new NotFoundError(key);
      return { fh, size: info.size };
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async get(key: string): Promise<Buffer | null> {
    try {
      return await readFile(this.path(key));
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async put(key: string, data: Uint8Array): Promise<void> {
    const target = this.path(key);
    if (data.length === 0) {
      // Nothing that could be half-written: the file is created in place.
      await this.inFolder(target, async () => (await open(target, 'w')).close());
      await syncFolder(dirname(target));
      return;
    }
    const tmp = join(this.tmpDir, randomUUID());
    try {
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(data);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await this.moveIntoPlace(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.path(key), { force: true });
  }

  /**
   * Unlinks each key's file, DELETE_CONCURRENCY at a time. A file that is not there is
   * removed already; any other failure (an invalid key, a key that is a folder of other
   * keys) is that key's alone. Like delete, no folder is synced: a removal undone by a
   * crash leaves an object that a later pass removes again.
   */
  async deleteMany(keys: readonly string[]): Promise<Array<{ key: string; error: Error }>> {
    const failures: Array<{ key: string; error: Error }> = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < keys.length) {
        const key = keys[next++]!;
        const error = await this.unlinkKey(key);
        if (error) failures.push({ key, error });
      }
    };
    await Promise.all(Array.from({ length: Math.min(DELETE_CONCURRENCY, keys.length) }, worker));
    return failures;
  }

  /** Unlinks one key's file; returns the failure, or undefined when the file is gone. */
  private async unlinkKey(key: string): Promise<Error | undefined> {
    try {
      await unlink(this.path(key));
      return undefined;
    } catch (err) {
      // ENOTDIR: a part of the key's path is a file, so the key's own file cannot exist.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  /**
   * Renames the object's file to the other key, replacing what is there, and makes the
   * rename durable: the target's folder is synced, and the source's when it is another one
   * (else a crash could bring the object back under its old key as well).
   */
  async move(from: string, to: string): Promise<void> {
    const source = this.path(from);
    const target = this.path(to);
    // A folder of other keys is no object, and renaming it would move all of them.
    if (!(await isFile(source))) throw new NotFoundError(from);
    try {
      await this.moveIntoPlace(source, target);
    } catch (err) {
      // The source was removed since it was seen.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new NotFoundError(from);
      throw err;
    }
    if (dirname(source) !== dirname(target)) await syncFolder(dirname(source));
  }

  async *list(prefix: string): AsyncIterable<ObjectInfo> {
    const start = join(this.root, prefix);
    yield* this.walk(start);
  }

  private async *walk(dir: string): AsyncIterable<ObjectInfo> {
    let handle;
    try {
      handle = await opendir(dir);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    for await (const entry of handle) {
      const full = join(dir, entry.name);
      if (entry.isDirectory()) {
        yield* this.walk(full);
      } else if (entry.isFile()) {
        let s;
        try {
          s = await stat(full);
        } catch (err) {
          if (isNotFound(err)) continue;
          throw err;
        }
        yield { key: relative(this.root, full).split(sep).join('/'), size: s.size, modified: s.mtime };
      }
    }
  }

  async createUpload(id: string, info?: Uint8Array): Promise<void> {
    const path = this.uploadPath(id);
    const created = await mkdir(dirname(path), { recursive: true });
    try {
      // The upload's record needs no fsync: after a crash, an upload without it is purged by age.
      if (info) await writeFile(join(dirname(path), INFO_FILE), info, { flag: 'wx' });
      const fh = await open(path, 'wx');
      await fh.close();
    } catch (err) {
      // A folder this call made holds nothing anyone else knows of (a full disk, say, cut it short).
      if (created !== undefined) await rm(dirname(path), { recursive: true, force: true }).catch(() => undefined);
      throw err;
    }
  }

  async uploadSize(id: string): Promise<number | null> {
    try {
      return (await stat(this.uploadPath(id))).size;
    } catch (err) {
      if (isNotFound(err) || err instanceof NotFoundError) return null;
      throw err;
    }
  }

  async appendUpload(id: string, offset: number | undefined, source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<number> {
    const fh = await openUpload(this.uploadPath(id), id, 'r+');
    let closeLater = false;
    try {
      const size = (await fh.stat()).size;
      if (offset !== undefined && size !== offset) throw new UploadOffsetError(size, offset);
      this.throwIfFailed(id);
      const previous = this.flushes.get(id);
      this.flushes.delete(id); // from the first byte written, the bytes on disk are not all of them
      const out = new FlushingFileWriter(fh, size);
      try {
        await pipeline(source, out, ...(signal ? [{ signal }] : []));
        await previous;
      } catch (err) {
        if (out.flushError !== undefined) this.failed.set(id, out.flushError);
        await previous?.catch(() => undefined);
        throw err;
      }
      const flush = fh.datasync().then(
        () => true as const,
        (err: unknown) => {
          this.failed.set(id, err);
          throw err;
        },
      );
      this.flushes.set(id, flush); // awaited by the next append or the commit
      closeLater = true;
      void flush.catch(() => undefined).finally(() => fh.close().catch(() => undefined));
      return out.position;
    } finally {
      if (!closeLater) await fh.close();
    }
  }

  private throwIfFailed(id: string): void {
    const err = this.failed.get(id);
    if (err !== undefined) throw new Error(`upload ${id} could not be flushed to disk: ${(err as Error).message}`, { cause: err });
  }

  async readUpload(id: string, signal?: AbortSignal): Promise<Readable> {
    try {
      return await this.read(relative(this.root, this.uploadPath(id)).split(sep).join('/'), undefined, signal);
    } catch (err) {
      if (err instanceof NotFoundError) throw new NotFoundError(`uploads/${id}`);
      throw err;
    }
  }

  async commitUpload(id: string, key: string): Promise<void> {
    const path = this.uploadPath(id);
    const target = this.path(key);
    const flush = this.flushes.get(id);
    if (flush) await flush.catch(() => undefined);
    this.throwIfFailed(id);
    if (!flush) {
      const fh = await openUpload(path, id, 'r');
      try {
        await fh.datasync();
      } finally {
        await fh.close();
      }
    }
    try {
      await this.moveIntoPlace(path, target);
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(`uploads/${id}`);
      throw err;
    }
    this.flushes.delete(id);
    await removeUploadFolder(dirname(path));
  }

  async cancelUpload(id: string): Promise<void> {
    if (!UPLOAD_ID_RE.test(id)) return;
    this.flushes.delete(id);
    this.failed.delete(id);
    await rm(join(this.uploadsDir, id), { recursive: true, force: true });
  }

  async *listUploads(): AsyncIterable<{ id: string; modified: Date }> {
    let handle;
    try {
      handle = await opendir(this.uploadsDir);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    for await (const entry of handle) {
      if (!entry.isDirectory() || !UPLOAD_ID_RE.test(entry.name)) continue;
      // The data file's time, or the directory's for an upload being created or cancelled.
      for (const path of [join(this.uploadsDir, entry.name, 'data'), join(this.uploadsDir, entry.name)]) {
        try {
          yield { id: entry.name, modified: (await stat(path)).mtime };
          break;
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    }
  }

  /** Renames a finished file to its final name and makes the rename durable. */
  private async moveIntoPlace(from: string, to: string): Promise<void> {
    await this.inFolder(to, () => rename(from, to));
    await syncFolder(dirname(to));
  }

  /**
   * Runs an operation that creates `path`; when its folder is missing, creates
   * the folder and runs it once more. (Most folders exist: trying first saves
   * a mkdir per write.)
   */
  private async inFolder<T>(path: string, create: () => Promise<T>): Promise<T> {
    try {
      return await create();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(dirname(path), { recursive: true });
      return create();
    }
  }
}

/** Where createUpload keeps the upload's record (keys.uploadInfo). */
const INFO_FILE = 'info.json';

/** Whether `path` is a file; false when nothing is there (or a file stands where a folder of the path would). */
async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}

/** Makes the entries of a folder (a rename, a new file) durable. */
async function syncFolder(dir: string): Promise<void> {
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Removes a committed upload's folder: its record, then the folder, or whatever else is left. */
async function removeUploadFolder(dir: string): Promise<void> {
  await unlink(join(dir, INFO_FILE)).catch(() => undefined);
  try {
    await rmdir(dir);
  } catch {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Writes a stream into a file from `position`, batching what arrives while a
 * write is in flight into one writev. Every SYNC_EVERY bytes it starts an
 * fdatasync in the background (one at a time, and the writes wait when the
 * disk is a whole flush behind); at the end it waits for the one running.
 */
class FlushingFileWriter extends Writable {
  private unsynced = 0;
  private flushing: Promise<void> | undefined;
  /** Kept: after a failed fdatasync, Linux may report success for the next one. */
  flushError: unknown;

  constructor(
    private readonly fh: FileHandle,
    public position: number,
  ) {
    super({ highWaterMark: WRITE_BUFFER });
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (err?: Error | null) => void): void {
    this.writeAll(chunks.map((c) => c.chunk)).then(() => callback(), callback);
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.writeAll([chunk]).then(() => callback(), callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    (async () => {
      await this.flushing;
      this.throwIfFlushFailed();
    })().then(() => callback(), callback);
  }

  private throwIfFlushFailed(): void {
    if (this.flushError !== undefined) throw this.flushError;
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    this.throwIfFlushFailed();
    let total = 0;
    for (const b of buffers) total += b.length;
    let done = 0;
    while (done < total) {
      const { bytesWritten } = await this.fh.writev(done === 0 ? buffers : remaining(buffers, done), this.position);
      if (bytesWritten === 0) throw new Error('the file system accepted no bytes');
      done += bytesWritten;
      this.position += bytesWritten;
    }
    this.unsynced += total;
    if (this.unsynced >= SYNC_EVERY && !this.flushing) {
      this.unsynced = 0;
      // One flush at a time; a failed one fails the next write or the final flush.
      this.flushing = this.fh
        .datasync()
        .catch((err: unknown) => {
          this.flushError ??= err;
        })
        .finally(() => {
          this.flushing = undefined;
        });
    }
    // The disk is a flush behind: wait for it rather than pile up unwritten bytes.
    if (this.flushing && this.unsynced >= SYNC_EVERY) await this.flushing;
  }
}

/** The bytes of `buffers` after the first `skip`. */
function remaining(buffers: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
