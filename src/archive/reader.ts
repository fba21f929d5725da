/**
 * Reads an image archive (a tar, optionally gzip-compressed) as it arrives: every regular file
 * is hashed on the way and, unless it is small, goes straight into a staging upload, so that
 * memory stays flat whatever the archive's size and whatever the order of its entries. Small
 * files (manifests, configs, index.json) are kept in memory up to a fixed budget, and staged
 * only if an image uses them. What the archive is (docker save, OCI layout) is decided
 * afterwards, from the files.
 *
 * Hostile input is refused here: paths that climb out of the archive, links that point outside
 * it, devices and FIFOs, duplicate paths, too many entries, too many bytes, headers larger than
 * tar-stream's limit, truncated streams. On any refusal every staged file is discarded.
 */
import { posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract as tarExtract, type Header as Headers } from 'tar-stream';
import { Digest, type DigestAlgorithm } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import type { StagedBlob } from '../registry/uploads.js';

/** Files at most this large are kept in memory rather than staged (manifests, configs, index.json). */
export const SMALL_FILE_BYTES = 1024 * 1024;
/** At most this much of an archive is kept in memory; further files are staged, and read back when needed. */
export const SMALL_FILES_BUDGET = 16 * 1024 * 1024;
/** How many links a path may go through before it names a file. */
const MAX_LINK_HOPS = 16;

export interface Stager {
  stage(body: AsyncIterable<Uint8Array>, algorithm: DigestAlgorithm, signal?: AbortSignal): Promise<StagedBlob>;
  discardStaged(id: string): Promise<void>;
}

export interface ArchiveLimits {
  /** The most bytes, as sent and once decompressed. */
  readonly maxBytes: number;
  /** The most entries of any kind. */
  readonly maxEntries: number;
}

export interface StagedFile {
  readonly path: string;
  readonly digest: Digest;
  readonly size: number;
  /** Where a large file was staged; a small one is only kept in memory (`content`). */
  readonly staged?: StagedBlob;
  /** The file's bytes, when it was small enough to keep. */
  readonly content?: Buffer;
  /** Whether the file starts with gzip's magic number (a compressed layer). */
  readonly gzip: boolean;
}

/** What an archive held: its files (staged) and its links, by normalized path. */
export class ArchiveContents {
  readonly files = new Map<string, StagedFile>();
  /** Link path → the path it names, normalized against the archive's root. */
  readonly links = new Map<string, string>();
  entries = 0;
  /** The archive's bytes as they were sent. */
  readonly sent = { bytes: 0 };

  /** The file at `path`, following links; undefined when there is none. */
  file(path: string): StagedFile | undefined {
    let current = normalizePath(path);
    for (let hop = 0; current !== undefined && hop <= MAX_LINK_HOPS; hop++) {
      const found = this.files.get(current);
      if (found) return found;
      current = this.links.get(current);
    }
    return undefined;
  }

  /** Every staged upload, once. */
  staged(): StagedBlob[] {
    return [...this.files.values()].flatMap((f) => (f.staged ? [f.staged] : []));
  }
}

export function archiveInvalid(message: string, detail?: unknown): RegistryError {
  return new RegistryError('BLOB_UPLOAD_INVALID', `invalid archive: ${message}`, detail === undefined ? {} : { detail });
}

function tooLarge(what: string, limit: number): RegistryError {
  return new RegistryError('SIZE_INVALID', `the archive is larger than this registry accepts (${what} ${limit} bytes; archives.maxsize)`, {
    status: 413,
    detail: { limit },
  });
}

/**
 * A path inside the archive, without `./` and trailing slashes; undefined for the root itself.
 * Refuses absolute paths, `..` and NUL characters.
 */
export function normalizePath(name: string): string | undefined {
  if (name.includes('\u0000')) throw archiveInvalid('an entry name holds a NUL character');
  if (name.startsWith('/')) throw archiveInvalid(`the entry ${JSON.stringify(name.slice(0, 200))} has an absolute path`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw archiveInvalid(`the entry ${JSON.stringify(name.slice(0, 200))} climbs out of the archive (..)`);
  return parts.length === 0 ? undefined : parts.join('/');
}

/** Where a link points, as a path from the archive's root; refuses links that leave the archive. */
function linkTarget(header: Headers, path: string): string {
  const target = header.linkname ?? '';
  const shown = JSON.stringify(target.slice(0, 200));
  if (target === '' || target.includes('\u0000')) throw archiveInvalid(`the link ${path} has no target`);
  if (target.startsWith('/')) throw archiveInvalid(`the link ${path} points outside the archive (${shown})`);
  // A symbolic link is relative to its folder; a hard link names a path from the root.
  const joined = header.type === 'symlink' ? posix.join(posix.dirname(path), target) : posix.normalize(target);
  if (joined === '..' || joined.startsWith('../')) throw archiveInvalid(`the link ${path} points outside the archive (${shown})`);
  const resolved = normalizePath(joined);
  if (resolved === undefined) throw archiveInvalid(`the link ${path} points at the archive's root`);
  return resolved;
}

/** Counts bytes as they pass and refuses more than `limit`. */
async function* bounded(source: AsyncIterable<Uint8Array>, limit: number, what: string, seen = { bytes: 0 }): AsyncIterable<Uint8Array> {
  for await (const chunk of source) {
    seen.bytes += chunk.length;
    if (seen.bytes > limit) throw tooLarge(what, limit);
    yield chunk;
  }
}

/** The stream, decompressed when it starts with gzip's magic number. */
async function* decompressed(source: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
  const iterator = source[Symbol.asyncIterator]();
  let first = await iterator.next();
  // A first chunk of one byte cannot tell: wait for a second.
  let head = first.done ? Buffer.alloc(0) : Buffer.from(first.value);
  while (!first.done && head.length < 2) {
    first = await iterator.next();
    if (!first.done) head = Buffer.concat([head, first.value]);
  }
  const rest: AsyncIterable<Uint8Array> = {
    [Symbol.asyncIterator]: () => ({
      next: () => (first.done ? Promise.resolve({ done: true, value: undefined }) : iterator.next()),
      return: async () => (await iterator.return?.()) ?? { done: true, value: undefined },
    }),
  };
  async function* whole(): AsyncIterable<Uint8Array> {
    if (head.length > 0) yield head;
    yield* rest;
  }
  if (head[0] !== 0x1f || head[1] !== 0x8b) {
    yield* whole();
    return;
  }
  const gunzip = createGunzip();
  const feeding = pipeline(Readable.from(whole()), gunzip).catch((err: unknown) => {
    gunzip.destroy(err as Error);
  });
  try {
    for await (const chunk of gunzip) yield chunk as Buffer;
  } catch (err) {
    if (err instanceof RegistryError) throw err;
    throw archiveInvalid(`the gzip stream is damaged (${(err as Error).message})`);
  } finally {
    gunzip.destroy();
    await feeding;
  }
}

/** Passes an entry's bytes on, noting its first two (gzip's magic number?). */
async function* keeping(source: AsyncIterable<Uint8Array>, head: { bytes?: Buffer }): AsyncIterable<Uint8Array> {
  for await (const chunk of source) {
    if (head.bytes === undefined) head.bytes = Buffer.from(chunk.subarray(0, 2));
    else if (head.bytes.length < 2) head.bytes = Buffer.concat([head.bytes, chunk.subarray(0, 2 - head.bytes.length)]);
    yield chunk;
  }
}

/**
 * Reads the whole archive into staging. Resolves with its contents once the tar ended well;
 * rejects (having discarded what it staged) on anything else.
 */
export async function readArchive(
  source: AsyncIterable<Uint8Array>,
  stager: Stager,
  limits: ArchiveLimits,
  signal?: AbortSignal,
): Promise<ArchiveContents> {
  const contents = new ArchiveContents();
  const extract = tarExtract();
  let budget = SMALL_FILES_BUDGET;
  const tar = decompressed(bounded(source, limits.maxBytes, 'as sent, at most', contents.sent));
  const feeding = pipeline(Readable.from(bounded(tar, limits.maxBytes, 'decompressed, at most')), extract).then(
    () => undefined,
    (err: unknown) => err,
  );
  try {
    try {
      for await (const entry of extract) {
        if (++contents.entries > limits.maxEntries) {
          throw archiveInvalid(`it holds more than ${limits.maxEntries} entries (archives.maxentries)`, { limit: limits.maxEntries });
        }
        const header = entry.header;
        const path = normalizePath(header.name);
        if (path !== undefined && (contents.files.has(path) || contents.links.has(path))) {
          throw archiveInvalid(`it holds ${path} twice`);
        }
        switch (header.type) {
          case 'directory':
            entry.resume();
            break;
          case 'file':
          case 'contiguous-file': {
            if (path === undefined) throw archiveInvalid('a file entry has no name');
            const size = header.size ?? 0;
            const algorithm: DigestAlgorithm = path.startsWith('blobs/sha512/') ? 'sha512' : 'sha256';
            if (size <= SMALL_FILE_BYTES && size <= budget) {
              // Kept in memory only: staged when (and if) an image uses it.
              budget -= size;
              const chunks: Buffer[] = [];
              for await (const chunk of entry) chunks.push(chunk as Buffer);
              const content = Buffer.concat(chunks);
              const gzip = content[0] === 0x1f && content[1] === 0x8b;
              contents.files.set(path, { path, digest: Digest.of(content, algorithm), size: content.length, content, gzip });
              break;
            }
            const head: { bytes?: Buffer } = {};
            const staged = await stager.stage(keeping(entry as AsyncIterable<Uint8Array>, head), algorithm, signal);
            const gzip = head.bytes?.[0] === 0x1f && head.bytes[1] === 0x8b;
            contents.files.set(path, { path, digest: staged.digest, size: staged.size, staged, gzip });
            break;
          }
          case 'symlink':
          case 'link':
            if (path === undefined) throw archiveInvalid('a link entry has no name');
            contents.links.set(path, linkTarget(header, path));
            entry.resume();
            break;
          default:
            throw archiveInvalid(`the entry ${path ?? '.'} is a ${header.type ?? 'special file'}, which an image archive never holds`);
        }
      }
    } catch (err) {
      // The loop's own refusal, else the parser's reason (an entry cut short says only "destroyed").
      extract.destroy();
      const fed = await feeding;
      throw [err, fed].map(explain).find((e) => e instanceof RegistryError) ?? err;
    }
    const fed = await feeding;
    if (fed !== undefined) throw explain(fed);
    if (contents.entries === 0) throw archiveInvalid('it is empty, or not a tar');
    return contents;
  } catch (err) {
    await discardAll(stager, contents);
    throw err;
  }
}

/** What tar-stream says of a stream that is not a well-formed tar. */
const TAR_ERRORS = /^(Unexpected end of data|Invalid tar header|Header exceeds max size|Invalid header)/;

/**
 * A refusal as the client should read it: tar-stream's and zlib's errors name the problem. Any
 * other failure (the store's, the client going away) is left as it is.
 */
function explain(err: unknown): unknown {
  if (err instanceof RegistryError) return err;
  const e = err as { message?: unknown; code?: unknown } | undefined;
  const message = typeof e?.message === 'string' ? e.message : '';
  const zlib = typeof e?.code === 'string' && e.code.startsWith('Z_');
  if (message.startsWith('Unexpected end of data') || (zlib && message === 'unexpected end of file')) return archiveInvalid('it ends before its last entry (truncated)');
  if (TAR_ERRORS.test(message)) return archiveInvalid(message);
  if (zlib) return archiveInvalid(`the gzip stream is damaged (${message})`);
  return err;
}

export async function discardAll(stager: Stager, contents: ArchiveContents): Promise<void> {
  for (const blob of contents.staged()) await stager.discardStaged(blob.id);
  contents.files.clear();
}
