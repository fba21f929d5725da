// What the 1 GiB memory tests share: the bytes they send (generated chunk by chunk, never held
// whole) and a request written with backpressure whose answer is read whenever it comes.
import { once } from 'node:events';
import { request as httpRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';

/**
 * Chunk `i` of a large test body: a random 1 MiB base with a counter written every 4 KiB, so that
 * no two chunks are alike (chunk 0 starts with four zero bytes: never gzip's magic number). A
 * fresh buffer each time, because the socket may still hold the previous one.
 */
export function chunkAt(base: Buffer, i: number): Buffer {
  const chunk = Buffer.from(base);
  for (let off = 0; off < chunk.length; off += 4096) chunk.writeUInt32LE((i * 0x9e3779b1 + off) >>> 0, off);
  return chunk;
}

export interface StreamingRequest {
  req: ClientRequest;
  /** The answer and its body, whenever the server gives it (before the body ended, too). */
  responded: Promise<{ res: IncomingMessage; body: string }>;
  /** Rejects when the request closes: raced against while writing. */
  closed: Promise<never>;
}

/** Opens a request on its own connection, for a body the caller writes. */
export function streamingRequest(url: string, method: string, headers: OutgoingHttpHeaders): StreamingRequest {
  const req = httpRequest(url, { method, agent: false, headers });
  const responded = new Promise<{ res: IncomingMessage; body: string }>((resolve, reject) => {
    req.once('error', reject);
    req.once('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.once('end', () => resolve({ res, body }));
      res.once('error', reject);
    });
  });
  responded.catch(() => {}); // awaited by the caller
  const closed = once(req, 'close').then((): never => {
    throw new Error('the request closed mid-body');
  });
  closed.catch(() => {}); // only raced against while writing
  return { req, responded, closed };
}

/** Writes with backpressure: resolves once the request can take more, rejects if it closed first. */
export async function writeChunk({ req, closed }: StreamingRequest, chunk: Buffer): Promise<void> {
  if (req.write(chunk)) return;
  await Promise.race([once(req, 'drain'), closed]);
}
