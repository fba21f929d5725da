import type { ServerResponse } from 'node:http';
import type { ObjectHandle } from '../storage/blob-store.js';

/** The size of each read. */
const CHUNK = 1024 * 1024;
/** How many chunks a response holds: while some are being written, the next ones are read. */
const DEPTH = 4;

/**
 * Writes `length` bytes of an object, from `start`, as the body of `res`
 * (whose head the caller has written), then ends it. A response reuses up to
 * DEPTH buffers of CHUNK bytes: reads run ahead of the socket by that much,
 * and a buffer is read into again only once the socket has taken all of it.
 * So a response holds 4 MiB at most, and no buffer is allocated per chunk.
 *
 * Rejects when the client goes away or the object cannot be read; the
 * response is then destroyed (a body cut short tells the client it failed).
 */
export async function sendObject(object: ObjectHandle, start: number, length: number, res: ServerResponse): Promise<void> {
  if (length === 0) return new Promise<void>((resolve) => res.end(resolve));
  const size = Math.min(CHUNK, length);
  const chunks = Math.ceil(length / size);
  const buffers = Array.from({ length: Math.min(DEPTH, chunks) }, () => Buffer.allocUnsafeSlow(size));
  const depth = buffers.length;
  const reads: Array<Promise<Buffer>> = [];
  const writes: Array<Promise<void>> = [];
  const gone = settled(
    new Promise<never>((_, reject) => {
      res.once('close', () => reject(new Error('the client went away')));
    }),
  );
  /** Reads chunk k into its buffer, once the socket has taken what that buffer held before. */
  const read = (k: number) => {
    const slot = k % depth;
    const previous = writes[slot];
    const offset = k * size;
    reads[slot] = settled(
      (async () => {
        await previous;
        return readChunk(object, buffers[slot]!, Math.min(size, length - offset), start + offset);
      })(),
    );
  };
  try {
    for (let k = 0; k < depth; k++) read(k);
    for (let k = 0; k < chunks; k++) {
      const chunk = await Promise.race([reads[k % depth]!, gone]);
      writes[k % depth] = settled(new Promise<void>((resolve, reject) => res.write(chunk, (err) => (err ? reject(err) : resolve()))));
      if (k + depth < chunks) read(k + depth);
    }
    await Promise.race([Promise.all(writes), gone]);
    await new Promise<void>((resolve) => res.end(resolve));
  } catch (err) {
    res.destroy();
    throw err;
  }
}

/** The promise, marked as handled: it may be left behind when the client goes away first. */
function settled<T>(promise: Promise<T>): Promise<T> {
  promise.catch(() => undefined);
  return promise;
}

/** Fills `buffer` with `length` bytes from `position`; an object shorter than that is an error. */
async function readChunk(object: ObjectHandle, buffer: Buffer, length: number, position: number): Promise<Buffer> {
  let filled = 0;
  while (filled < length) {
    const n = await object.read(filled === 0 ? buffer : buffer.subarray(filled), length - filled, position + filled);
    if (n === 0) throw new Error(`the object ended at byte ${position + filled}, before the ${length} bytes asked from ${position}`);
    filled += n;
  }
  return buffer.subarray(0, length);
}
