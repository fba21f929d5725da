/**
 * One upstream fetch of a blob, however many clients ask for it at once. The upstream's bytes are
 * written to a spool file as they arrive and passed on to the store's staging upload in the same
 * pass (hashed there); every client reads the spool file from its start, following the fetch as
 * it grows. The last byte is held back until the digest is verified, so that no client is handed
 * a whole blob that turns out wrong: a fetch that fails or does not match cuts every reader off.
 * Memory stays constant: chunks flow through, readers read into 256 KiB buffers.
 */
import { once, EventEmitter } from 'node:events';
import { mkdtemp, open, rm, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { UpstreamUnavailableError } from './upstream.js';

const READ_CHUNK = 256 * 1024;

/** What a fetch's producer does: reads the upstream into `sink` (each chunk awaited), then verifies and stores. */
export interface FetchJob {
  /** The size the upstream announced (its Content-Length), when it did. */
  readonly size: number | undefined;
  /**
   * Consumes the upstream's bytes: must pass every chunk through `spool` (which writes it to the
   * spool file) before using it, and resolve once the digest is verified (the bytes are then all
   * released to readers) and `stored` once the blob is in the store and indexed.
   */
  run(spool: (chunks: AsyncIterable<Uint8Array>) => AsyncIterable<Uint8Array>): { verified: Promise<void>; stored: Promise<void> };
  /** Gives the upstream's answer up without reading it (the spool file could not be made). */
  cancel(): void;
}

export interface BlobFetch {
  /** The size the upstream announced, when it did. */
  readonly size: number | undefined;
  /**
   * The blob's bytes from the start, as they arrive; errors if the fetch fails. Undefined once the
   * fetch is over and its spool file gone: the blob is then read from the store.
   */
  reader(signal?: AbortSignal): Readable | undefined;
  /** Resolves when the blob is in the store (or rejects with why not). */
  readonly stored: Promise<void>;
}

class Spool extends EventEmitter {
  written = 0;
  verified = false;
  failed: Error | undefined;
  /** Holders of the file: the fetch, and each reader; the file goes with the last. */
  private holders = 1;

  constructor(
    readonly path: string,
    private readonly file: FileHandle,
    /** Longest a reader waits for the fetch to move on before it gives up. */
    private readonly stallMs: number,
  ) {
    super();
    this.setMaxListeners(0);
  }

  async *spool(chunks: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    for await (const chunk of chunks) {
      let at = 0;
      while (at < chunk.length) {
        const { bytesWritten } = await this.file.write(chunk, at, chunk.length - at, this.written + at);
        at += bytesWritten;
      }
      this.written += chunk.length;
      this.emit('progress');
      yield chunk;
    }
  }

  /** Bytes readers may have now: all once verified, else all but the last. */
  get available(): number {
    return this.verified ? this.written : Math.max(0, this.written - 1);
  }

  verify(): void {
    this.verified = true;
    this.emit('progress');
  }

  fail(err: Error): void {
    if (this.failed || this.verified) return;
    this.failed = err;
    this.emit('progress');
  }

  /** The producer is done with the file (stored or failed). */
  async finish(): Promise<void> {
    await this.release();
  }

  reader(signal?: AbortSignal): Readable | undefined {
    if (this.holders === 0) return undefined;
    this.holders++;
    const spool = this;
    let handle: FileHandle | undefined;
    async function* read(): AsyncIterable<Buffer> {
      handle = await open(spool.path, 'r');
      for (let position = 0; ; ) {
        if (spool.failed) throw spool.failed;
        const available = spool.available;
        if (position < available) {
          const buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK, available - position));
          const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
          if (bytesRead === 0) throw new UpstreamUnavailableError('the spool file of the fetch ended early');
          position += bytesRead;
          yield bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
          continue;
        }
        if (spool.verified) return;
        await spool.moved(signal);
      }
    }
    const stream = Readable.from(read(), { objectMode: false });
    // The hold ends when the stream does, read or not (a client gone before the first byte).
    stream.once('close', () => {
      void (async () => {
        await handle?.close().catch(() => undefined);
        await spool.release();
      })();
    });
    return stream;
  }

  /** Waits for the fetch to move on (a chunk, the verification or a failure), at most stallMs. */
  private async moved(signal?: AbortSignal): Promise<void> {
    const timeout = AbortSignal.timeout(this.stallMs);
    const both = signal ? AbortSignal.any([signal, timeout]) : timeout;
    try {
      await once(this, 'progress', { signal: both });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new UpstreamUnavailableError(`the upstream fetch made no progress for ${this.stallMs} ms`);
    }
  }

  private async release(): Promise<void> {
    if (--this.holders > 0) return;
    await this.file.close().catch(() => undefined);
    // Left behind if it cannot be removed: the folder goes when the app closes.
    await rm(this.path, { force: true }).catch(() => undefined);
  }
}

/** The fetches in flight, by key (repository and digest). */
export class BlobFetches {
  private readonly inFlight = new Map<string, Promise<BlobFetch>>();
  private dir: Promise<string> | undefined;

  constructor(
    private readonly stallMs: number,
    /** Where the spool folder is made (the system's temporary directory). */
    private readonly parent: string = tmpdir(),
  ) {}

  /** How many fetches are in flight now. */
  get size(): number {
    return this.inFlight.size;
  }

  has(key: string): boolean {
    return this.inFlight.has(key);
  }

  /**
   * Joins the fetch under `key`, or starts it with `start` (which asks the upstream; it may throw,
   * and then every joiner gets its error). The entry goes once the blob is stored or the fetch fails.
   */
  join(key: string, start: () => Promise<FetchJob>): Promise<BlobFetch> {
    const current = this.inFlight.get(key);
    if (current) return current;
    const started = this.begin(start);
    this.inFlight.set(key, started);
    started.then(
      (fetch) => fetch.stored.then(
        () => this.forget(key, started),
        () => this.forget(key, started),
      ),
      () => this.forget(key, started),
    );
    return started;
  }

  private forget(key: string, entry: Promise<BlobFetch>): void {
    if (this.inFlight.get(key) === entry) this.inFlight.delete(key);
  }

  private async begin(start: () => Promise<FetchJob>): Promise<BlobFetch> {
    const job = await start();
    this.dir ??= mkdtemp(join(this.parent, 'ocireg-proxy-'));
    let path: string;
    let file: FileHandle;
    try {
      path = join(await this.dir, randomUUID());
      file = await open(path, 'w+');
    } catch (err) {
      job.cancel();
      this.dir = undefined;
      throw err;
    }
    const spool = new Spool(path, file, this.stallMs);
    const { verified, stored } = job.run((chunks) => spool.spool(chunks));
    verified.then(
      () => spool.verify(),
      (err: Error) => spool.fail(err),
    );
    const done = stored.catch((err: Error) => {
      spool.fail(err);
      throw err;
    });
    void done.then(
      () => spool.finish(),
      () => spool.finish(),
    );
    return { size: job.size, reader: (signal) => spool.reader(signal), stored: done };
  }

  /** Removes the spool folder (the app closes). */
  async close(): Promise<void> {
    const dir = this.dir;
    this.dir = undefined;
    if (dir) await rm(await dir, { recursive: true, force: true }).catch(() => undefined);
  }
}
