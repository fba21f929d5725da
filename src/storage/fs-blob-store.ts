import { randomUUID } from 'node:crypto';
import { mkdir, open, opendir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  NotFoundError,
  UploadOffsetError,
  type BlobStore,
  type ByteRange,
  type ObjectInfo,
} from './blob-store.js';

const UPLOAD_ID_RE = /^[A-Za-z0-9-]{1,64}$/;

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
 * writes go to a temporary file that is fsync'd and renamed into place.
 */
export class FsBlobStore implements BlobStore {
  private readonly tmpDir: string;
  private readonly uploadsDir: string;

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
    let fh: FileHandle;
    try {
      fh = await open(this.path(key), 'r');
      if (!(await fh.stat()).isFile()) {
        await fh.close();
        throw new NotFoundError(key);
      }
    } catch (err) {
      if (isNotFound(err)) throw new NotFoundError(key);
      throw err;
    }
    return fh.createReadStream({
      ...(range ? { start: range.start, end: range.end } : {}),
      highWaterMark: 256 * 1024,
      ...(signal ? { signal } : {}),
    });
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

  async createUpload(id: string): Promise<void> {
    const path = this.uploadPath(id);
    await mkdir(dirname(path), { recursive: true });
    const fh = await open(path, 'wx');
    await fh.close();
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
    const path = this.uploadPath(id);
    const fh = await openUpload(path, id, 'r+');
    const size = (await fh.stat()).size;
    if (offset !== undefined && size !== offset) {
      await fh.close();
      throw new UploadOffsetError(size, offset);
    }
    const out = fh.createWriteStream({ start: size, highWaterMark: 1024 * 1024 });
    await pipeline(source, out, ...(signal ? [{ signal }] : []));
    return (await stat(path)).size;
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
    const fh = await openUpload(path, id, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.moveIntoPlace(path, this.path(key));
    await rm(dirname(path), { recursive: true, force: true });
  }

  async cancelUpload(id: string): Promise<void> {
    if (!UPLOAD_ID_RE.test(id)) return;
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
    const dir = dirname(to);
    await mkdir(dir, { recursive: true });
    await rename(from, to);
    const dh = await open(dir, 'r');
    try {
      await dh.sync();
    } finally {
      await dh.close();
    }
  }
}
