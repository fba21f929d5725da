import type { Readable } from 'node:stream';

/** An inclusive byte range. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ObjectInfo {
  key: string;
  size: number;
  modified: Date;
}

/** Raised by a store when an object or an upload does not exist. */
export class NotFoundError extends Error {
  override name = 'NotFoundError';
  constructor(readonly key: string) {
    super(`not found: ${key}`);
  }
}

/** Raised by appendUpload when the offset given is not the upload's current size. */
export class UploadOffsetError extends Error {
  override name = 'UploadOffsetError';
  constructor(
    readonly expected: number,
    readonly given: number,
  ) {
    super(`upload is at offset ${expected}, not ${given}`);
  }
}

/**
 * Raised when the backend cannot serve a request for now (an object store that
 * throttles, answers 5xx or times out after its retries). The request may be
 * repeated later; nothing was half-written.
 */
export class StoreUnavailableError extends Error {
  override name = 'StoreUnavailableError';
  constructor(
    message: string,
    /** The backend asked to slow down (as opposed to failing). */
    readonly throttled: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Raised when the backend has no room for a write: a full disk, an exhausted
 * quota, a read-only filesystem, a file past the filesystem's size limit (or
 * an object store that says it is full). Nothing half-written is left where
 * a key points (an append keeps, as after any failure, the bytes that reached
 * the disk); the write may be repeated once room is made.
 */
export class StorageFullError extends Error {
  override name = 'StorageFullError';
  constructor(
    message: string,
    /** What the backend said: an errno code (ENOSPC, EDQUOT, EROFS, EFBIG, EACCES, EPERM) or the object store's. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const NO_ROOM: Record<string, string> = {
  ENOSPC: 'no space left on the storage device',
  EDQUOT: 'the storage quota is exhausted',
  EROFS: 'the storage is a read-only filesystem',
  EFBIG: 'the file is larger than the storage allows',
  EACCES: 'the storage refused the write (permission denied)',
  EPERM: 'the storage refused the write (operation not permitted)',
};

/** The StorageFullError that a failed write means, or undefined when it means something else. */
export function toStorageFullError(err: unknown): StorageFullError | undefined {
  if (err instanceof StorageFullError) return err;
  const code = (err as NodeJS.ErrnoException)?.code;
  if (code === undefined || !Object.hasOwn(NO_ROOM, code)) return undefined;
  return new StorageFullError(`${NO_ROOM[code]} (${code})`, code, { cause: err });
}

/** Raised at start when the backend cannot be opened (a missing bucket, refused credentials). */
export class StoreOpenError extends Error {
  override name = 'StoreOpenError';
}

/** Raised when an upload grows past what the backend can hold as one object. */
export class UploadTooLargeError extends Error {
  override name = 'UploadTooLargeError';
  constructor(readonly limit: number) {
    super(`the upload is larger than the storage backend accepts (${limit} bytes)`);
  }
}

/** An object opened for reads into buffers the caller owns (BlobStore.openObject). */
export interface ObjectHandle {
  readonly size: number;
  /** Reads up to `length` bytes at `position` into the start of `buffer`; 0 at the end. */
  read(buffer: Buffer, length: number, position: number): Promise<number>;
  close(): Promise<void>;
}

/**
 * Where bytes live. Shaped for object stores: whole objects addressed by key,
 * ranged reads, and resumable uploads that are committed to a key at the end.
 * Nothing here knows about OCI semantics, HTTP or the index.
 */
export interface BlobStore {
  /** Size and time of an object, or null when it does not exist. */
  stat(key: string, signal?: AbortSignal): Promise<ObjectInfo | null>;
  /** A stream of an object's bytes (or of a range of them). Throws NotFoundError. */
  read(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable>;
  /**
   * Opens an object for reads into the caller's buffers, which it can reuse from
   * one read to the next: large objects are then served without a new buffer per
   * chunk (and the garbage collection that follows). Optional: a store whose
   * reads are network responses has no use for it. Throws NotFoundError.
   */
  openObject?(key: string): Promise<ObjectHandle>;
  /** A small object's bytes, or null when it does not exist. */
  get(key: string, signal?: AbortSignal): Promise<Buffer | null>;
  /** Writes a small object atomically (readers see the old bytes or the new, never a mix). */
  put(key: string, data: Uint8Array, signal?: AbortSignal): Promise<void>;
  /** Removes an object; removing one that does not exist is not an error. */
  delete(key: string): Promise<void>;
  /**
   * Removes many objects, as many per request as the backend takes (S3's DeleteObjects: 1,000
   * keys). Returns the keys it could not remove, each with its error; a key that does not exist
   * is not a failure. Optional: without it, callers delete one key at a time.
   */
  deleteMany?(keys: readonly string[]): Promise<Array<{ key: string; error: Error }>>;
  /**
   * Moves an object to another key, whole (a rename on a filesystem; a copy, then a delete, on
   * S3), replacing what is there. Throws NotFoundError when `from` does not exist. Optional.
   */
  move?(from: string, to: string): Promise<void>;
  /**
   * Every object under `prefix`, which ends in `/` (a folder of keys), in no
   * particular order. Not for hot paths.
   */
  list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo>;

  /**
   * Starts an empty upload. `info`, when given, is kept as the object
   * keys.uploadInfo(id) until the upload ends (it says whose upload it is).
   */
  createUpload(id: string, info?: Uint8Array, signal?: AbortSignal): Promise<void>;
  /** Bytes received so far, or null when there is no such upload. */
  uploadSize(id: string, signal?: AbortSignal): Promise<number | null>;
  /**
   * Appends a stream at the end of the upload. An `offset`, when given, must
   * be the current size (else UploadOffsetError, before the source is read).
   * Returns the new size. On failure the upload keeps the bytes that were
   * durably appended; uploadSize tells how many.
   */
  appendUpload(id: string, offset: number | undefined, source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<number>;
  /** The bytes received so far, to recompute a digest. */
  readUpload(id: string, signal?: AbortSignal): Promise<Readable>;
  /** Makes the upload's bytes the object `key`, durably, and ends the upload (its info too). */
  commitUpload(id: string, key: string, signal?: AbortSignal): Promise<void>;
  /** Discards an upload, its bytes and its info; safe to call for an unknown or committed upload. */
  cancelUpload(id: string): Promise<void>;
  /** The uploads present, with the time each last received data. */
  listUploads(signal?: AbortSignal): AsyncIterable<{ id: string; modified: Date }>;

  /**
   * A time-limited URL from which a client can GET the object directly, or
   * undefined when the backend has none (a local filesystem).
   */
  directUrl?(key: string): Promise<string | undefined>;

  /**
   * Requests the backend's client sent again after a failure, per operation, since the start
   * (for metrics). Optional: a backend without retries has none.
   */
  retries?(): ReadonlyMap<string, number>;

  close?(): Promise<void>;
}
