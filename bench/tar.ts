// A minimal ustar writer: regular files only, streamed, so that large entries take constant memory.

const BLOCK = 512;

export interface TarEntry {
  /** Path inside the archive (up to 255 bytes, split into prefix and name at a slash past 100). */
  name: string;
  size: number;
  /** The content: a buffer, or chunks adding up to exactly `size` bytes. */
  data: Buffer | (() => AsyncIterable<Buffer>);
  mode?: number;
  /** Seconds since the epoch (default 0, so that archives are reproducible). */
  mtime?: number;
}

function writeString(block: Buffer, offset: number, length: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  if (bytes.length > length) throw new Error(`tar: "${value}" does not fit in ${length} bytes`);
  bytes.copy(block, offset);
}

/** An octal field: zero-padded digits followed by a NUL. */
function writeOctal(block: Buffer, offset: number, length: number, value: number): void {
  const digits = value.toString(8);
  if (digits.length > length - 1) throw new Error(`tar: ${value} does not fit in a ${length}-byte field`);
  writeString(block, offset, length, `${digits.padStart(length - 1, '0')}\0`);
}

/** Splits a path into ustar's prefix (155) and name (100) at a slash. */
function splitName(path: string): { prefix: string; name: string } {
  if (Buffer.byteLength(path) <= 100) return { prefix: '', name: path };
  for (let i = path.indexOf('/'); i >= 0; i = path.indexOf('/', i + 1)) {
    const prefix = path.slice(0, i);
    const name = path.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(name) <= 100 && name.length > 0) return { prefix, name };
  }
  throw new Error(`tar: path too long for ustar: ${path}`);
}

/** The 512-byte ustar header of a regular file. */
export function tarHeader(path: string, size: number, mode = 0o644, mtime = 0): Buffer {
  const block = Buffer.alloc(BLOCK);
  const { prefix, name } = splitName(path);
  writeString(block, 0, 100, name);
  writeOctal(block, 100, 8, mode);
  writeOctal(block, 108, 8, 0); // uid
  writeOctal(block, 116, 8, 0); // gid
  writeOctal(block, 124, 12, size);
  writeOctal(block, 136, 12, mtime);
  block.fill(0x20, 148, 156); // checksum counted as spaces
  block[156] = 0x30; // '0': regular file
  writeString(block, 257, 6, 'ustar\0');
  writeString(block, 263, 2, '00');
  writeString(block, 265, 32, 'root');
  writeString(block, 297, 32, 'root');
  writeString(block, 345, 155, prefix);
  let sum = 0;
  for (const byte of block) sum += byte;
  writeString(block, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return block;
}

/** The zeros that fill an entry of `size` bytes up to a whole block. */
export function tarPadding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

/** The end of an archive: two zero blocks. */
export const TAR_END: Buffer = Buffer.alloc(2 * BLOCK);

/** The size of an archive holding files of these sizes. */
export function tarSize(fileSizes: readonly number[]): number {
  return fileSizes.reduce((total, size) => total + BLOCK + size + tarPadding(size).length, 0) + TAR_END.length;
}

/**
 * The bytes of an archive of `entries`, produced as they are read. Entries may be made
 * lazily (an async generator), so that a later one can depend on what an earlier one held.
 */
export async function* tarStream(entries: Iterable<TarEntry> | AsyncIterable<TarEntry>): AsyncGenerator<Buffer> {
  for await (const entry of entries) {
    yield tarHeader(entry.name, entry.size, entry.mode, entry.mtime);
    let written = 0;
    if (Buffer.isBuffer(entry.data)) {
      if (entry.data.length !== entry.size) throw new Error(`tar: ${entry.name}: ${entry.data.length} bytes given for a size of ${entry.size}`);
      written = entry.size;
      yield entry.data;
    } else {
      for await (const chunk of entry.data()) {
        written += chunk.length;
        if (written > entry.size) throw new Error(`tar: ${entry.name}: more than the ${entry.size} bytes declared`);
        yield chunk;
      }
    }
    if (written !== entry.size) throw new Error(`tar: ${entry.name}: ${written} bytes given for a size of ${entry.size}`);
    const pad = tarPadding(entry.size);
    if (pad.length > 0) yield pad;
  }
  yield TAR_END;
}
