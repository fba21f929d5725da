import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { Digest } from '../oci/digest.js';
import { RangeNotSatisfiableError } from '../oci/errors.js';
import { MediaType } from '../oci/media-types.js';
import { openBlobBody, sendBlobBody } from './blob-body.js';
import type { ProxyRoute } from '../proxy/cache.js';
import { assertDeletable, requestSignal, type Handler } from './context.js';
import { parseRange } from './request.js';

type BlobParams = { name: string; digest: string };

/** GET and HEAD /v2/<name>/blobs/<digest>, with Range. */
export const getBlob: Handler<BlobParams> = async (ctx, { name, digest: raw }, request, reply) => {
  const digest = Digest.parse(raw);
  const route = ctx.proxy?.active ? await ctx.proxy.route(name) : undefined;
  // A repository served from an upstream: what it holds is served as below, the rest by the cache.
  let held = route ? await ctx.registry.index.linkedBlobSize(name, digest.toString()) : undefined;
  if (route && held === undefined && (await sendProxiedBlob(ctx, route, name, digest, request, reply))) return reply;
  if (route && held !== undefined) ctx.proxy!.heldBlob();
  held ??= (await ctx.registry.blobs.stat(name, digest)).size;
  const size = held;
  const etag = `"${digest}"`;
  const fresh = request.headers['if-none-match'] === etag;
  const range = fresh ? undefined : parseRange(request.headers.range, size);
  if (range === null) throw new RangeNotSatisfiableError(size);
  const length = range ? range.end - range.start + 1 : size;
  // A GET may be sent to the object store itself (storage.redirect), which serves the Range too.
  const direct = request.method === 'GET' && !fresh && ctx.config.storage.redirect ? await ctx.registry.blobs.directUrl(digest) : undefined;
  // Opened before any header is set: content missing from the store answers a plain 404.
  const body =
    request.method === 'GET' && length > 0 && !fresh && !direct ? await openBlobBody(ctx.registry, request, digest, range, size) : undefined;

  reply
    .header('Docker-Content-Digest', digest.toString())
    .header('ETag', etag)
    .header('Accept-Ranges', 'bytes')
    .header('Cache-Control', 'max-age=31536000, immutable');
  if (fresh) return reply.code(304).send();
  if (request.method === 'GET') ctx.registry.pulled({ kind: 'blob', repository: name, digest: digest.toString(), size }, ctx.origin(request));
  if (direct) return reply.code(307).header('Location', direct).header('Cache-Control', 'no-store').header('Content-Length', '0').send();
  reply.type(MediaType.OctetStream).header('Content-Length', String(length));
  if (range) reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  return sendBlobBody(request, reply, body, digest, range?.start ?? 0, length);
};

/**
 * A blob of a repository served from an upstream that the repository does not hold yet: a HEAD asks
 * the upstream for its size; a GET joins (or starts) its one fetch and streams the bytes as they
 * arrive (the whole blob, Range aside). The headers are set once the first bytes are there, so that
 * a fetch that fails first answers a plain error. False when the repository came to hold it
 * meanwhile (linked or fetched by another request): the caller serves it.
 */
async function sendProxiedBlob(
  ctx: Parameters<Handler<BlobParams>>[0],
  route: ProxyRoute,
  name: string,
  digest: Digest,
  request: FastifyRequest,
  reply: FastifyReply,
): Promise<boolean> {
  const proxy = ctx.proxy!;
  if (request.method === 'HEAD') {
    const size = await proxy.blobSize(name, digest, route, request.log);
    proxiedHeaders(reply, digest, size);
    await reply.send();
    return true;
  }
  const fetch = await proxy.blob(name, digest, route, request.log);
  const reader = fetch?.reader(requestSignal(request));
  if (!reader) return false; // linked from the store, or fetched and stored meanwhile
  const body = await startedBody(reader);
  proxiedHeaders(reply, digest, fetch!.size);
  reply.header('Cache-Control', 'max-age=31536000, immutable');
  ctx.registry.pulled({ kind: 'blob', repository: name, digest: digest.toString(), size: fetch!.size ?? 0 }, ctx.origin(request));
  body.once('error', (err) => request.log.info({ digest: digest.toString(), reason: err.message }, 'proxied blob response cut short'));
  await reply.send(body);
  return true;
}

function proxiedHeaders(reply: FastifyReply, digest: Digest, size: number | undefined): void {
  reply.header('Docker-Content-Digest', digest.toString()).header('ETag', `"${digest}"`).type(MediaType.OctetStream);
  if (size !== undefined) reply.header('Content-Length', String(size));
}

/** The stream with its first chunk read (or its first failure thrown) before any header is set. */
async function startedBody(stream: Readable): Promise<Readable> {
  const chunks = stream[Symbol.asyncIterator]();
  let first: IteratorResult<Buffer>;
  try {
    first = await chunks.next();
  } catch (err) {
    stream.destroy();
    throw err;
  }
  async function* rest(): AsyncIterable<Buffer> {
    try {
      if (first.done) return;
      yield first.value;
      for (;;) {
        const next = await chunks.next();
        if (next.done) return;
        yield next.value;
      }
    } finally {
      stream.destroy();
    }
  }
  const body = Readable.from(rest(), { objectMode: false });
  // A client gone before the body is read: the source ends too (its hold on the fetch with it).
  body.once('close', () => stream.destroy());
  return body;
}

/** DELETE /v2/<name>/blobs/<digest>: unlinks the blob from the repository. */
export const deleteBlob: Handler<BlobParams> = async (ctx, { name, digest }, request, reply) => {
  assertDeletable(ctx);
  await ctx.registry.blobs.unlink(name, Digest.parse(digest), ctx.origin(request));
  return reply.code(202).header('Content-Length', '0').send();
};
