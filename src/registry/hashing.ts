import type { Hash } from 'node:crypto';

export interface StreamCounter {
  /** Bytes passed on. */
  bytes: number;
  /** Bytes past the limit, read and dropped. */
  dropped: number;
}

/**
 * Passes a stream through while feeding a hash (when given) and counting bytes. With a
 * limit, bytes past it are read (so that the request can still be answered)
 * but neither hashed nor passed on; `counter.dropped` says how many.
 */
export async function* hashing(
  source: AsyncIterable<Uint8Array>,
  hash: Hash | undefined,
  counter: StreamCounter,
  limit = Number.POSITIVE_INFINITY,
): AsyncIterable<Uint8Array> {
  for await (const chunk of source) {
    const room = limit - counter.bytes;
    const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
    counter.dropped += chunk.length - part.length;
    if (part.length === 0) continue;
    hash?.update(part);
    counter.bytes += part.length;
    yield part;
  }
}
