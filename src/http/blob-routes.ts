import { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { MediaType } from '../oci/media-types.js';
import { assertDeletable, type Handler } from './context.js';
import { parseRange } from './request.js';

type BlobParams = { name: string; digest: string };

/** GET and HEAD /v2/<name>/blobs/<digest>, with Range. */
export const getBlob: Handler<BlobParams> = async (ctx, { name, digest: raw }, request, reply) => {
  const digest = Digest.parse(raw);
  const { size } = ctx.registry.blobs.stat(name, digest);
  const etag = `"${digest}"`;
  reply.header('Docker-Content-Digest', digest.toString());
  reply.header('ETag', etag);
  reply.header('Accept-Ranges', 'bytes');
  reply.header('Cache-Control', 'max-age=31536000');
  if (request.headers['if-none-match'] === etag) return reply.code(304).send();

  const range = parseRange(request.headers.range, size);
  if (range === null) {
    throw new RegistryError('SIZE_INVALID', 'requested range not satisfiable', {
      status: 416,
      detail: { size },
      headers: { 'Content-Range': `bytes */${size}` },
    });
  }
  reply.type(MediaType.OctetStream);
  if (range) {
    reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  }
  const length = range ? range.end - range.start + 1 : size;
  reply.header('Content-Length', String(length));
  if (request.method === 'HEAD' || length === 0) return reply.send();
  const stream = await ctx.registry.blobs.open(digest, range);
  return reply.send(stream);
};

/** DELETE /v2/<name>/blobs/<digest>: unlinks the blob from the repository. */
export const deleteBlob: Handler<BlobParams> = async (ctx, { name, digest }, _request, reply) => {
  assertDeletable(ctx);
  await ctx.registry.blobs.unlink(name, Digest.parse(digest));
  return reply.code(202).header('Content-Length', '0').send();
};
