/**
 * A blob's body as /v2/ and the ECR download route send it: opened before any header is set
 * (content missing from the store answers a plain error), then written from a file handle
 * with reused buffers, or piped from the store's stream.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Digest } from '../oci/digest.js';
import type { Registry } from '../registry/registry.js';
import type { ByteRange } from '../storage/blob-store.js';
import { requestSignal } from './context.js';
import { sendObject } from './send-object.js';

export type BlobBody = Awaited<ReturnType<Registry['blobs']['open']>>;

/** Opens the blob's bytes (a GET with something to send); throws if the store holds another size. */
export async function openBlobBody(
  registry: Registry,
  request: FastifyRequest,
  digest: Digest,
  range: ByteRange | undefined,
  size: number,
): Promise<BlobBody> {
  const body = await registry.blobs.open(digest, range, requestSignal(request));
  if ('handle' in body && body.handle.size !== size) {
    await body.handle.close();
    throw new Error(`blob ${digest} is ${body.handle.size} bytes in the store but ${size} in the index`);
  }
  return body;
}

/** Sends the body (none for a HEAD or an empty blob) after the headers set on `reply`. */
export async function sendBlobBody(
  request: FastifyRequest,
  reply: FastifyReply,
  body: BlobBody | undefined,
  digest: Digest,
  start: number,
  length: number,
): Promise<FastifyReply> {
  if (!body || 'stream' in body) return reply.send(body?.stream);
  const { handle } = body;
  reply.hijack();
  try {
    reply.raw.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
    await sendObject(handle, start, length, reply.raw);
  } catch (err) {
    if (!reply.raw.destroyed) reply.raw.destroy();
    request.log.info({ digest: digest.toString(), reason: (err as Error).message }, 'blob response cut short');
  } finally {
    await handle.close();
  }
  return reply;
}
