import type { Hash } from 'node:crypto';

/** Passes a stream through while feeding a hash and counting bytes. */
export async function* hashing(
  source: AsyncIterable<Uint8Array>,
  hash: Hash,
  counter: { bytes: number },
): AsyncIterable<Uint8Array> {
  for await (const chunk of source) {
    hash.update(chunk);
    counter.bytes += chunk.length;
    yield chunk;
  }
}
