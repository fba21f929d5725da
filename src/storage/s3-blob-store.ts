import { randomUUID } from 'node:crypto';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  NotFoundError,
  StoreOpenError,
  StoreUnavailableError,
  StorageFullError,
  UploadOffsetError,
  UploadTooLargeError,
  type BlobStore,
  type ByteRange,
  type ObjectInfo,
} from './blob-store.js';

export interface S3BlobStoreOptions {
  bucket: string;
  region: string;
  /** An S3-compatible endpoint (MinIO, Ceph RGW, R2, ...); AWS when absent. */
  endpoint?: string | undefined;
  /** Static credentials; when absent, the AWS SDK's chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  forcePathStyle?: boolean;
  /** A key prefix inside the bucket ('' or 'a/b'). */
  rootDirectory?: string;
  /** Size of the multipart parts the store uploads, at least 5 MiB. */
  chunkSize: number;
  /** Largest object copied by one CopyObject; larger ones are copied part by part (default 5 GiB, S3's limit). */
  copyLimit?: number;
  /** Attempts per S3 request, the first included (default 5). */
  maxAttempts?: number;
  /** Lifetime of the URLs given by directUrl (default 20 minutes). */
  urlLifetimeSeconds?: number;
  /** Keys per listing page (default 1000, S3's maximum). */
  pageSize?: number;
  /** Parts per multipart upload (default 10,000, S3's maximum). */
  maxParts?: number;
}

/** S3's rules: parts are 5 MiB or more (all but the last), and an upload has 10,000 at most. */
export const MIN_PART_SIZE = 5 * 1024 * 1024;
const MAX_PARTS = 10_000;
const COPY_LIMIT = 5 * 1024 * 1024 * 1024;
const UPLOAD_ID_RE = /^[A-Za-z0-9-]{1,64}$/;
/** Keys per DeleteObjects request: S3's limit. */
const DELETE_BATCH = 1000;
/** Times a blob read that breaks off mid-stream is resumed from where it stopped. */
const READ_RESUMES = 3;

/**
 * What the store knows of an upload, kept as `uploads/<id>/state.json` so that
 * any registry process (after a restart, or another replica) can continue it.
 *
 * The bytes are, in order: the parts of an S3 multipart upload into
 * `uploads/<id>/data`, then a tail of fewer than 5 MiB kept as its own small
 * object (S3 cannot take a part that small unless it is the last). Once
 * sealed (for a read back, or on commit), the bytes are one object.
 */
interface UploadDoc {
  v: 1;
  multipart?: string;
  parts: Array<{ n: number; etag: string; size: number }>;
  tail?: { key: string; size: number };
  sealed?: { key: string; size: number };
}

function docSize(doc: UploadDoc): number {
  if (doc.sealed) return doc.sealed.size;
  return doc.parts.reduce((sum, p) => sum + p.size, 0) + (doc.tail?.size ?? 0);
}

interface AwsError {
  name?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $retryable?: unknown;
}

function statusOf(err: unknown): number | undefined {
  return (err as AwsError)?.$metadata?.httpStatusCode;
}

/**
 * A failed S3 request, reduced to what is safe to log: the SDK's own error
 * carries the request's details (headers, string to sign, access key id).
 */
export class S3RequestError extends Error {
  override name = 'S3RequestError';
  constructor(
    readonly operation: string,
    /** S3's error code, e.g. AccessDenied. */
    readonly code: string,
    readonly status: number | undefined,
    detail: string,
  ) {
    super(`S3 ${operation} failed: ${code}${status ? ` (HTTP ${status})` : ''}: ${detail}`);
  }
}

/** S3's error code, from the SDK's error or ours. */
function codeOf(err: unknown): string | undefined {
  return err instanceof S3RequestError ? err.code : (err as AwsError)?.name;
}

function isMissing(err: unknown): boolean {
  const code = codeOf(err);
  return code === 'NoSuchKey' || code === 'NotFound' || (statusOf(err) === 404 && code !== 'NoSuchBucket');
}

function isNoSuchUpload(err: unknown): boolean {
  return codeOf(err) === 'NoSuchUpload';
}

function isUnsupported(err: unknown): boolean {
  const code = codeOf(err);
  return code === 'NotImplemented' || code === 'MethodNotAllowed';
}

function isAbort(err: unknown, signal?: AbortSignal): boolean {
  return (err as Error)?.name === 'AbortError' || signal?.aborted === true;
}

const THROTTLING = new Set(['SlowDown', 'Throttling', 'ThrottlingException', 'RequestLimitExceeded', 'TooManyRequests']);
const NETWORK = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'ERR_STREAM_PREMATURE_CLOSE']);

/** Whether a failure is the backend's passing trouble (as opposed to a configuration or programming error). */
function isTransient(err: unknown): boolean {
  const e = err as AwsError & NodeJS.ErrnoException;
  const status = statusOf(err);
  if (THROTTLING.has(e?.name ?? '') || status === 429 || status === 503) return true;
  // 501 Not Implemented is for good: a server without the feature.
  if (status !== undefined && status >= 500 && status !== 501) return true;
  if (e?.name === 'TimeoutError' || e?.name === 'RequestTimeout') return true;
  return NETWORK.has(e?.code ?? '') || e?.$retryable !== undefined;
}

/**
 * Turns what the SDK throws, once its own retries are spent, into the store's
 * errors; the SDK's error itself is not kept (see S3RequestError).
 */
function storeError(err: unknown, what: string): unknown {
  if (err instanceof StoreUnavailableError || err instanceof S3RequestError || err instanceof NotFoundError) return err;
  const e = err as AwsError & NodeJS.ErrnoException;
  const status = statusOf(err);
  // 507 Insufficient Storage: what MinIO (XMinioStorageFull) and other S3 servers answer when full.
  if (status === 507 || e?.name === 'XMinioStorageFull') {
    return new StorageFullError(`S3 ${what} failed: ${e?.name ?? 'error'} (HTTP ${status ?? 507})`, e?.name ?? 'HTTP 507');
  }
  if (isTransient(err)) {
    const throttled = THROTTLING.has(e?.name ?? '') || status === 429;
    const code = status !== undefined ? `${e?.name} (HTTP ${status})` : (e?.code ?? e?.name ?? 'error');
    return new StoreUnavailableError(`S3 ${what} failed: ${code}`, throttled);
  }
  if (e?.$metadata !== undefined) return new S3RequestError(what, e.name ?? 'error', status, e.message);
  return err;
}

/** Why DeleteObjects could not delete one key (an entry of its answer's Errors). */
function deleteError(code: string, message: string): Error {
  if (THROTTLING.has(code)) return new StoreUnavailableError(`S3 DeleteObjects failed: ${code}`, true);
  if (code === 'InternalError' || code === 'ServiceUnavailable') return new StoreUnavailableError(`S3 DeleteObjects failed: ${code}`, false);
  return new S3RequestError('DeleteObjects', code, undefined, message);
}

/**
 * Gathers bytes into parts of `size` and hands each to `flush`, one at a time;
 * the next part is gathered while the previous uploads. The part buffers are
 * reused, so that a long upload leaves no garbage of part size behind (which
 * the garbage collector is slow to reclaim); an upload smaller than a part
 * never allocates one. At most: a part being sent, a part's worth of the
 * caller's chunks, and the spare.
 */
class PartBuffer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private inflight: Promise<void> | undefined;
  /** The buffer of the last part sent, free again once its upload settled. */
  private spare: Buffer | undefined;

  constructor(
    private readonly size: number,
    private readonly flush: (part: Buffer) => Promise<void>,
  ) {}

  async write(chunk: Uint8Array): Promise<void> {
    if (chunk.length === 0) return;
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.buffered += chunk.length;
    while (this.buffered >= this.size) {
      await this.settle();
      const part = this.take(this.size, this.spare);
      this.spare = undefined;
      const upload = this.flush(part).then(() => {
        this.spare = part;
      });
      upload.catch(() => undefined); // observed by the next settle()
      this.inflight = upload;
    }
  }

  /** Waits for the part in flight (and throws its failure); the bytes still buffered stay. */
  async settle(): Promise<void> {
    const inflight = this.inflight;
    this.inflight = undefined;
    await inflight;
  }

  /** Everything still buffered, as one buffer. */
  rest(): Buffer {
    return this.take(this.buffered, undefined);
  }

  private take(n: number, into: Buffer | undefined): Buffer {
    const out = into ?? Buffer.allocUnsafeSlow(n);
    let filled = 0;
    while (filled < n) {
      const head = this.chunks[0]!;
      const used = Math.min(head.length, n - filled);
      head.copy(out, filled, 0, used);
      filled += used;
      if (used === head.length) this.chunks.shift();
      else this.chunks[0] = head.subarray(used);
    }
    this.buffered -= n;
    return out;
  }
}

/**
 * A blob store in an S3-compatible bucket. Objects are S3 objects under the
 * root prefix; uploads are S3 multipart uploads whose progress is kept in the
 * bucket, so that they survive a restart; a committed upload is copied to its
 * key inside the bucket, which makes it appear whole or not at all.
 */
export class S3BlobStore implements BlobStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly chunkSize: number;
  private readonly copyLimit: number;
  private readonly urlLifetime: number;
  private readonly pageSize: number;
  private readonly maxParts: number;

  constructor(options: S3BlobStoreOptions) {
    if (options.chunkSize < MIN_PART_SIZE) throw new Error(`chunk size must be at least ${MIN_PART_SIZE} bytes`);
    this.bucket = options.bucket;
    this.prefix = options.rootDirectory ? `${options.rootDirectory}/` : '';
    this.chunkSize = options.chunkSize;
    this.copyLimit = options.copyLimit ?? COPY_LIMIT;
    this.urlLifetime = options.urlLifetimeSeconds ?? 20 * 60;
    this.pageSize = options.pageSize ?? 1000;
    this.maxParts = options.maxParts ?? MAX_PARTS;
    this.client = new S3Client({
      region: options.region,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      forcePathStyle: options.forcePathStyle ?? false,
      // A bucket in another region than the configured one still answers.
      followRegionRedirects: true,
      maxAttempts: options.maxAttempts ?? 5,
      retryMode: 'standard',
      // Checksums only where S3 requires them: S3-compatible servers differ
      // in which of the newer checksum headers they accept.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: {
        connectionTimeout: 5_000,
        // A socket silent this long is given up; the SDK retries the request.
        socketTimeout: 120_000,
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 256 }),
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 256 }),
      },
    });
    // Outermost step: it sees how many attempts the SDK's retry strategy made, success or failure.
    this.client.middlewareStack.add(
      (next, context) => async (args) => {
        try {
          const result = await next(args);
          this.#countRetries(context.commandName, (result.output as { $metadata?: { attempts?: number } }).$metadata?.attempts);
          return result;
        } catch (err) {
          this.#countRetries(context.commandName, (err as { $metadata?: { attempts?: number } }).$metadata?.attempts);
          throw err;
        }
      },
      { step: 'initialize', name: 'ocireg-retry-count' },
    );
  }

  readonly #retries = new Map<string, number>();

  #countRetries(command: string | undefined, attempts: number | undefined): void {
    if (attempts === undefined || attempts <= 1) return;
    const operation = (command ?? 'unknown').replace(/Command$/, '');
    this.#retries.set(operation, (this.#retries.get(operation) ?? 0) + attempts - 1);
  }

  retries(): ReadonlyMap<string, number> {
    return this.#retries;
  }

  /** Checks that the bucket exists and the credentials open it. */
  async init(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      const status = statusOf(err);
      const reason =
        status === 404 ? 'it does not exist' : status === 403 || status === 401 ? 'access was denied' : (err as Error).message;
      throw new StoreOpenError(`cannot open S3 bucket ${JSON.stringify(this.bucket)}: ${reason}`, { cause: err });
    }
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private key(key: string): string {
    if (key.split('/').some((p) => p === '..' || p === '.' || p === '') || key.includes('\0')) {
      throw new Error(`invalid storage key ${JSON.stringify(key)}`);
    }
    return this.prefix + key;
  }

  /** Runs one SDK request, turning its failures into the store's errors. */
  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw storeError(err, what);
    }
  }

  async stat(key: string, signal?: AbortSignal): Promise<ObjectInfo | null> {
    try {
      const head = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.key(key) }), {
        abortSignal: signal,
      });
      return { key, size: head.ContentLength ?? 0, modified: head.LastModified ?? new Date(0) };
    } catch (err) {
      if (isMissing(err)) return null;
      throw storeError(err, 'HeadObject');
    }
  }

  async read(key: string, range?: ByteRange, signal?: AbortSignal): Promise<Readable> {
    const first = await this.getObject(key, range, undefined, signal);
    if (!first) throw new NotFoundError(key);
    const stream = Readable.from(this.resumingBody(key, range, first, signal), { objectMode: false });
    // A stream destroyed before its first read never starts the generator: the response goes here.
    stream.once('close', () => first.body.destroy?.());
    return stream;
  }

  /**
   * An object's bytes; when the connection to S3 breaks off in the middle, the
   * read continues from where it stopped (a few times), with If-Match so that
   * the bytes come from the same version of the object. Only S3's side is
   * retried: an error thrown in by the consumer ends the read.
   */
  private async *resumingBody(
    key: string,
    range: ByteRange | undefined,
    first: { body: AsyncIterable<Uint8Array> & { destroy?: () => void }; length: number; etag: string | undefined },
    signal?: AbortSignal,
  ): AsyncGenerator<Uint8Array> {
    let body = first.body;
    let chunks = body[Symbol.asyncIterator]();
    let position = range?.start ?? 0;
    const end = range ? range.end : first.length - 1;
    let resumes = 0;
    try {
      while (position <= end) {
        let chunk: Uint8Array;
        try {
          const next = await chunks.next();
          if (next.done) throw Object.assign(new Error('S3 ended the object early'), { code: 'ERR_STREAM_PREMATURE_CLOSE' });
          chunk = next.value;
        } catch (err) {
          if (isAbort(err, signal) || resumes >= READ_RESUMES || !isTransient(err)) throw storeError(err, 'GetObject');
          body.destroy?.();
          await sleep(100 * 2 ** resumes++, undefined, signal ? { signal } : {});
          const next = await this.getObject(key, { start: position, end }, first.etag, signal);
          if (!next) throw new NotFoundError(key);
          body = next.body;
          chunks = body[Symbol.asyncIterator]();
          continue;
        }
        // Never past the range asked for, even from a server that sends more.
        const room = end + 1 - position;
        const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
        position += part.length;
        yield part;
      }
    } finally {
      body.destroy?.();
    }
  }

  private async getObject(
    key: string,
    range: ByteRange | undefined,
    ifMatch: string | undefined,
    signal?: AbortSignal,
  ): Promise<{ body: AsyncIterable<Uint8Array> & { destroy?: () => void }; length: number; etag: string | undefined } | null> {
    try {
      const out = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.key(key),
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
          ...(ifMatch ? { IfMatch: ifMatch } : {}),
        }),
        { abortSignal: signal },
      );
      const body: AsyncIterable<Uint8Array> & { destroy?: () => void } =
        (out.Body as AsyncIterable<Uint8Array> | undefined) ?? Readable.from([]);
      const from = range && /^bytes (\d+)-/.exec(out.ContentRange ?? '')?.[1];
      if (range && Number(from) !== range.start) {
        body.destroy?.();
        throw new Error(`S3 answered range ${JSON.stringify(out.ContentRange)} to bytes=${range.start}-${range.end}`);
      }
      return { body, length: out.ContentLength ?? 0, etag: out.ETag };
    } catch (err) {
      if (isMissing(err)) return null;
      throw storeError(err, 'GetObject');
    }
  }

  async get(key: string, signal?: AbortSignal): Promise<Buffer | null> {
    const out = await this.getObject(key, undefined, undefined, signal);
    if (!out) return null;
    const chunks: Uint8Array[] = [];
    try {
      for await (const chunk of out.body) chunks.push(chunk);
    } catch (err) {
      throw storeError(err, 'GetObject');
    }
    return Buffer.concat(chunks);
  }

  async put(key: string, data: Uint8Array, signal?: AbortSignal): Promise<void> {
    await this.call('PutObject', () =>
      this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: this.key(key), Body: data, ContentLength: data.length }),
        { abortSignal: signal },
      ),
    );
  }

  async delete(key: string): Promise<void> {
    await this.call('DeleteObject', () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.key(key) })));
  }

  /**
   * Deletes in DeleteObjects requests of up to DELETE_BATCH keys, one request at a time, so
   * that a large purge does not crowd out the registry's other requests. An invalid key fails
   * alone and is not sent; a request that fails whole (after the retries) fails its keys.
   */
  async deleteMany(keys: readonly string[]): Promise<Array<{ key: string; error: Error }>> {
    const failures: Array<{ key: string; error: Error }> = [];
    // The bucket's key of each store key; S3 answers with the former.
    const named = new Map<string, string>();
    for (const key of keys) {
      try {
        named.set(this.key(key), key);
      } catch (err) {
        failures.push({ key, error: err as Error });
      }
    }
    const bucketKeys = [...named.keys()];
    for (let i = 0; i < bucketKeys.length; i += DELETE_BATCH) {
      failures.push(...(await this.deleteBatch(bucketKeys.slice(i, i + DELETE_BATCH), named)));
    }
    return failures;
  }

  /**
   * One DeleteObjects request, in Quiet mode: S3 answers only the keys it could not delete
   * (a key that was not there is not among them, and NoSuchKey would mean the same).
   */
  private async deleteBatch(bucketKeys: string[], named: Map<string, string>): Promise<Array<{ key: string; error: Error }>> {
    let answer;
    try {
      answer = await this.call('DeleteObjects', () =>
        this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: bucketKeys.map((Key) => ({ Key })), Quiet: true },
            // Content-MD5 instead of the SDK's CRC32: MinIO and other S3-compatible servers require it here.
            ChecksumAlgorithm: 'MD5',
          }),
        ),
      );
    } catch (err) {
      const error = err instanceof Error ? err : new Error(String(err));
      return bucketKeys.map((k) => ({ key: named.get(k)!, error }));
    }
    return (answer.Errors ?? []).flatMap((entry) => {
      const key = entry.Key === undefined ? undefined : named.get(entry.Key);
      if (key === undefined || entry.Code === 'NoSuchKey') return [];
      return [{ key, error: deleteError(entry.Code ?? 'error', entry.Message ?? '') }];
    });
  }

  /**
   * Copies the object to the other key (part by part past the copy limit, as a commit does),
   * then deletes the source. Not atomic: a failure in between leaves the object under both
   * keys, and the move can be made again.
   */
  async move(from: string, to: string): Promise<void> {
    const info = await this.stat(from);
    if (!info) throw new NotFoundError(from);
    // S3 refuses to copy an object onto itself; and the delete would then lose it.
    if (this.key(from) === this.key(to)) return;
    try {
      await this.copy(from, to, info.size);
    } catch (err) {
      // The source was removed since it was seen.
      if (isMissing(err)) throw new NotFoundError(from);
      throw err;
    }
    await this.delete(from);
  }

  async *list(prefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    let token: string | undefined;
    do {
      const page = await this.call('ListObjectsV2', () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            MaxKeys: this.pageSize,
            ...(token ? { ContinuationToken: token } : {}),
          }),
          { abortSignal: signal },
        ),
      );
      for (const item of page.Contents ?? []) {
        if (!item.Key?.startsWith(this.prefix)) continue;
        yield { key: item.Key.slice(this.prefix.length), size: item.Size ?? 0, modified: item.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async directUrl(key: string): Promise<string> {
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.key(key) }), {
      expiresIn: this.urlLifetime,
    });
  }

  // ---- uploads ----

  private uploadKey(id: string, name: string): string {
    if (!UPLOAD_ID_RE.test(id)) throw new NotFoundError(`uploads/${id}`);
    return `uploads/${id}/${name}`;
  }

  private async loadDoc(id: string, signal?: AbortSignal): Promise<UploadDoc | null> {
    if (!UPLOAD_ID_RE.test(id)) return null;
    const raw = await this.get(this.uploadKey(id, 'state.json'), signal);
    if (!raw) return null;
    const doc = JSON.parse(raw.toString('utf8')) as UploadDoc;
    if (doc.v !== 1 || !Array.isArray(doc.parts)) throw new Error(`upload ${id} has a state this version cannot read`);
    return doc;
  }

  private async saveDoc(id: string, doc: UploadDoc): Promise<void> {
    await this.put(this.uploadKey(id, 'state.json'), Buffer.from(JSON.stringify(doc)));
  }

  async createUpload(id: string, info?: Uint8Array, signal?: AbortSignal): Promise<void> {
    this.uploadKey(id, 'state.json');
    signal?.throwIfAborted();
    if (info) await this.put(this.uploadKey(id, 'info.json'), info, signal);
    await this.saveDoc(id, { v: 1, parts: [] });
  }

  async uploadSize(id: string, signal?: AbortSignal): Promise<number | null> {
    const doc = await this.loadDoc(id, signal);
    return doc ? docSize(doc) : null;
  }

  async appendUpload(id: string, offset: number | undefined, source: AsyncIterable<Uint8Array>, signal?: AbortSignal): Promise<number> {
    signal?.throwIfAborted();
    const old = await this.loadDoc(id, signal);
    if (!old) throw new NotFoundError(`uploads/${id}`);
    const size = docSize(old);
    if (offset !== undefined && size !== offset) throw new UploadOffsetError(size, offset);

    // The new state is built beside the old one and saved after each part, so
    // the stored state always describes bytes that are really there. A sealed
    // upload (read back earlier) is reopened by streaming its bytes into new
    // parts; its state is replaced only once all of them are in again.
    const reopening = old.sealed !== undefined;
    const doc: UploadDoc = reopening ? { v: 1, parts: [] } : { v: 1, parts: [...old.parts], ...(old.multipart ? { multipart: old.multipart } : {}) };
    let garbage: string[] = [];
    const parts = new PartBuffer(this.chunkSize, async (part) => {
      await this.uploadPart(id, doc, part);
      if (reopening) return;
      await this.saveDoc(id, doc);
      // The old tail's bytes were the first of these parts, and the saved state no longer names it.
      if (old.tail) garbage = [old.tail.key];
    });
    const carried = reopening ? await this.read(old.sealed!.key) : old.tail ? await this.read(old.tail.key) : undefined;

    let failure: unknown;
    try {
      if (carried) for await (const chunk of carried) await parts.write(chunk as Buffer);
      // The client's failures (a cut connection, an abort) end its bytes, and those received are
      // kept below; the store's failures (in parts.write) end the append.
      let received = 0;
      const chunks = source[Symbol.asyncIterator]();
      try {
        for (;;) {
          let next: IteratorResult<Uint8Array>;
          try {
            signal?.throwIfAborted();
            next = await chunks.next();
          } catch (err) {
            failure = err;
            break;
          }
          if (next.done) break;
          received += next.value.length;
          await parts.write(next.value);
        }
      } finally {
        if (failure === undefined) await chunks.return?.();
      }
      // Nothing new: a carried tail (under 5 MiB) has not left the buffer.
      if (received === 0 && !reopening) {
        if (failure !== undefined) throw failure;
        return size;
      }
      await parts.settle();
      const rest = parts.rest();
      if (rest.length >= MIN_PART_SIZE) {
        await this.uploadPart(id, doc, rest);
      } else if (rest.length > 0) {
        const tailKey = this.uploadKey(id, `tail-${randomUUID()}`);
        await this.put(tailKey, rest);
        doc.tail = { key: tailKey, size: rest.length };
      }
      await this.saveDoc(id, doc);
      if (old.tail) garbage = [old.tail.key];
      if (reopening && old.sealed!.key !== this.uploadKey(id, 'data')) garbage.push(old.sealed!.key);
    } catch (err) {
      failure ??= err;
      // What this append made and the stored state does not name is removed. A save whose
      // answer was lost may have taken effect, so the state is read again; when it cannot
      // be, nothing is removed (leftovers go with the upload, or to a lifecycle rule).
      const stored = await this.loadDoc(id).catch(() => undefined);
      if (stored === undefined) {
        garbage = [];
      } else {
        const named = new Set([stored?.multipart, stored?.tail?.key, stored?.sealed?.key]);
        garbage = garbage.filter((key) => !named.has(key));
        if (doc.tail && !named.has(doc.tail.key)) garbage.push(doc.tail.key);
        if (doc.multipart && !named.has(doc.multipart) && doc.multipart !== old.multipart) {
          await this.abortMultipart(this.uploadKey(id, 'data'), doc.multipart).catch(() => undefined);
        }
      }
    } finally {
      await Promise.all(garbage.map((key) => this.delete(key).catch(() => undefined)));
    }
    if (failure !== undefined) throw failure;
    return docSize(doc);
  }

  /** Uploads the next part of `doc`'s multipart upload, starting that upload when needed. */
  private async uploadPart(id: string, doc: UploadDoc, part: Buffer): Promise<void> {
    const n = doc.parts.length + 1;
    if (n > this.maxParts) throw new UploadTooLargeError(this.maxParts * this.chunkSize);
    const dataKey = this.uploadKey(id, 'data');
    doc.multipart ??= await this.startMultipart(dataKey);
    let etag: string;
    try {
      etag = await this.sendPart(dataKey, doc.multipart, n, part);
    } catch (err) {
      // The multipart upload is gone (aborted by a lifecycle rule, or completed): so is this upload.
      if (isNoSuchUpload(err)) throw new NotFoundError(`uploads/${id}`);
      throw err;
    }
    doc.parts.push({ n, etag, size: part.length });
    delete doc.tail;
  }

  private async startMultipart(key: string): Promise<string> {
    const created = await this.call('CreateMultipartUpload', () =>
      this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.key(key) })),
    );
    if (!created.UploadId) throw new Error('S3 gave no UploadId');
    return created.UploadId;
  }

  /** Sends part `n` of a multipart upload; returns its ETag. */
  private async sendPart(key: string, uploadId: string, n: number, part: Buffer): Promise<string> {
    const out = await this.call('UploadPart', () =>
      this.client.send(
        new UploadPartCommand({ Bucket: this.bucket, Key: this.key(key), UploadId: uploadId, PartNumber: n, Body: part, ContentLength: part.length }),
      ),
    );
    if (!out.ETag) throw new Error('S3 gave no ETag for a part');
    return out.ETag;
  }

  private async abortMultipart(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.key(key), UploadId: uploadId }));
    } catch (err) {
      // Gone already, or a server that cannot abort (s3rver): the parts stay
      // out of sight until a lifecycle rule removes them.
      if (isNoSuchUpload(err) || isMissing(err) || isUnsupported(err)) return;
      throw storeError(err, 'AbortMultipartUpload');
    }
  }

  /**
   * Makes the upload's bytes one object: the tail becomes the last part and
   * the multipart upload is completed (or, without parts, the tail object is
   * the whole). Appends after this reopen the upload.
   */
  private async seal(id: string, doc: UploadDoc): Promise<{ key: string; size: number }> {
    if (doc.sealed) return doc.sealed;
    const size = docSize(doc);
    const dataKey = this.uploadKey(id, 'data');
    let sealed: { key: string; size: number };
    const tailKey = doc.tail?.key;
    if (doc.parts.length === 0) {
      if (doc.tail) {
        sealed = { key: doc.tail.key, size };
      } else {
        await this.put(dataKey, new Uint8Array(0));
        sealed = { key: dataKey, size: 0 };
      }
    } else {
      sealed = { key: dataKey, size };
      try {
        if (doc.tail) {
          const tail = await this.get(doc.tail.key);
          if (!tail || tail.length !== doc.tail.size) throw new Error(`upload ${id} lost its tail`);
          await this.uploadPart(id, doc, tail);
        }
        await this.completeMultipart(dataKey, doc.multipart!, doc.parts, size);
      } catch (err) {
        if (!(err instanceof NotFoundError) && !isNoSuchUpload(err)) throw err;
        // The multipart upload is gone: completed by a seal that died before saving its
        // state, or else aborted (by a lifecycle rule), which ends the upload.
        if ((await this.stat(dataKey))?.size !== size) throw new NotFoundError(`uploads/${id}`);
        delete doc.tail;
      }
    }
    await this.saveDoc(id, { v: 1, parts: [], sealed });
    // Only once the saved state no longer names it.
    if (doc.tail === undefined && tailKey !== undefined) await this.delete(tailKey).catch(() => undefined);
    return sealed;
  }

  /**
   * Completes a multipart upload. A retry of a completion that succeeded
   * unseen answers NoSuchUpload; the object being there with its size is then
   * the success it missed.
   */
  private async completeMultipart(key: string, uploadId: string, parts: UploadDoc['parts'], size: number): Promise<void> {
    try {
      await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: this.key(key),
          UploadId: uploadId,
          MultipartUpload: { Parts: parts.map((p) => ({ PartNumber: p.n, ETag: p.etag })) },
        }),
      );
    } catch (err) {
      if (isNoSuchUpload(err) && (await this.stat(key))?.size === size) return;
      throw storeError(err, 'CompleteMultipartUpload');
    }
  }

  async readUpload(id: string, signal?: AbortSignal): Promise<Readable> {
    const doc = await this.loadDoc(id, signal);
    if (!doc) throw new NotFoundError(`uploads/${id}`);
    const sealed = await this.seal(id, doc);
    if (sealed.size === 0) return Readable.from([]);
    return this.read(sealed.key, undefined, signal);
  }

  async commitUpload(id: string, key: string, signal?: AbortSignal): Promise<void> {
    const doc = await this.loadDoc(id, signal);
    if (!doc) throw new NotFoundError(`uploads/${id}`);
    const sealed = await this.seal(id, doc);
    await this.copy(sealed.key, key, sealed.size, signal);
    await this.delete(this.uploadKey(id, 'state.json'));
    await Promise.all([this.delete(sealed.key), this.delete(this.uploadKey(id, 'info.json'))]);
  }

  /** Copies an object inside the bucket: the target appears whole or not at all. */
  private async copy(from: string, to: string, size: number, signal?: AbortSignal): Promise<void> {
    if (size <= this.copyLimit) {
      await this.call('CopyObject', () =>
        this.client.send(
          new CopyObjectCommand({
            Bucket: this.bucket,
            Key: this.key(to),
            CopySource: `${this.bucket}/${this.key(from).split('/').map(encodeURIComponent).join('/')}`,
          }),
          { abortSignal: signal },
        ),
      );
      return;
    }
    // Past CopyObject's limit: through the registry, part by part.
    const uploadId = await this.startMultipart(to);
    const done: UploadDoc['parts'] = [];
    const sendPart = async (part: Buffer) => {
      const n = done.length + 1;
      done.push({ n, etag: await this.sendPart(to, uploadId, n, part), size: part.length });
    };
    try {
      const parts = new PartBuffer(this.chunkSize, sendPart);
      for await (const chunk of await this.read(from, undefined, signal)) await parts.write(chunk as Buffer);
      await parts.settle();
      const rest = parts.rest();
      if (rest.length > 0 || done.length === 0) await sendPart(rest);
      await this.completeMultipart(to, uploadId, done, size);
    } catch (err) {
      await this.abortMultipart(to, uploadId).catch(() => undefined);
      throw err;
    }
  }

  async cancelUpload(id: string): Promise<void> {
    if (!UPLOAD_ID_RE.test(id)) return;
    // A state that cannot be read for now stops the cancel (a purge tries again later), so
    // that its multipart upload is not lost from sight; one that cannot be parsed is dropped.
    const doc = await this.loadDoc(id).catch((err: unknown) => {
      if (err instanceof StoreUnavailableError || err instanceof S3RequestError) throw err;
      return null;
    });
    if (doc?.multipart && !doc.sealed) await this.abortMultipart(this.uploadKey(id, 'data'), doc.multipart);
    const leftovers: string[] = [];
    for await (const obj of this.list(`uploads/${id}/`)) leftovers.push(obj.key);
    // The state goes first: from then on the upload is gone, whatever else remains.
    const state = this.uploadKey(id, 'state.json');
    if (leftovers.includes(state)) await this.delete(state);
    await Promise.all(leftovers.filter((k) => k !== state).map((k) => this.delete(k)));
  }

  async *listUploads(signal?: AbortSignal): AsyncIterable<{ id: string; modified: Date }> {
    const uploads = new Map<string, Date>();
    for await (const obj of this.list('uploads/', signal)) {
      const id = obj.key.split('/')[1]!;
      if (!UPLOAD_ID_RE.test(id)) continue;
      const seen = uploads.get(id);
      if (!seen || seen < obj.modified) uploads.set(id, obj.modified);
    }
    for (const [id, modified] of uploads) yield { id, modified };
  }
}
