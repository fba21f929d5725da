import { Digest } from '../oci/digest.js';
import { RangeNotSatisfiableError } from '../oci/errors.js';
import { MediaType } from '../oci/media-types.js';
import { assertDeletable, requestSignal, type Handler } from './context.js';
import { parseRange } from './request.js';

type BlobParams = { name: string; digest: string };

/** GET and HEAD /v2/<name>/blobs/<digest>, with Range. */
export const getBlob: Handler<BlobParams> = async (ctx, { name, digest: raw }, request, reply) => {
  const digest = Digest.parse(raw);
  const { size } = ctx.registry.blobs.stat(name, digest);
  const etag = `"${digest}"`;
  const range = request.headers['if-none-match'] === etag ? undefined : parseRange(request.headers.range, size);
  if (range === null) throw new RangeNotSatisfiableError(size);
  const length = range ? range.end - range.start + 1 : size;
  // Opened before any header is set: content missing from the store answers a plain 404.
  const stream =
    request.method === 'GET' && length > 0 && request.headers['if-none-match'] !== etag
      ? await ctx.registry.blobs.open(digest, range, requestSignal(request))
      : undefined;

  reply
    .header('Docker-Content-Digest', digest.toString())
    .header('ETag', etag)
    .header('Accept-Ranges', 'bytes')
    .header('Cache-Control', 'max-age=31536000, immutable');
  if (request.headers['if-none-match'] === etag) return reply.code(304).send();
  reply.type(MediaType.OctetStream).header('Content-Length', String(length));
  if (range) reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  return reply.send(stream);
};

/** DELETE /v2/<name>/blobs/<digest>: unlinks the blob from the repository. */
export const deleteBlob: Handler<BlobParams> = async (ctx, { name, digest }, _request, reply) => {
  assertDeletable(ctx);
  await ctx.registry.blobs.unlink(name, Digest.parse(digest));
  return reply.code(202).header('Content-Length', '0').send();
};
