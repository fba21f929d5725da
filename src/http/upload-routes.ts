import { Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { assertName } from '../oci/names.js';
import type { UploadState } from '../registry/uploads.js';
import { assertWritable, requestSignal, type Handler, type RouteContext } from './context.js';
import { contentLength, hasBody, parseContentRange, queryParam } from './request.js';
import type { FastifyReply } from 'fastify';

type StartParams = { name: string };

export function uploadPath(repo: string, id: string): string {
  return `/v2/${repo}/blobs/uploads/${id}`;
}

/** `0-<last byte>`, the form clients parse (`0-0` for an empty upload). */
export function rangeHeader(size: number): string {
  return `0-${Math.max(0, size - 1)}`;
}
type UploadParams = { name: string; id: string };

function blobCreated(ctx: RouteContext, reply: FastifyReply, name: string, digest: Digest): FastifyReply {
  return reply
    .code(201)
    .header('Location', ctx.url(`/v2/${name}/blobs/${digest}`))
    .header('Docker-Content-Digest', digest.toString())
    .header('Content-Length', '0')
    .send();
}

function uploadAccepted(ctx: RouteContext, reply: FastifyReply, state: UploadState, status: 202 | 204): FastifyReply {
  reply
    .code(status)
    .header('Location', ctx.url(uploadPath(state.repo, state.id)))
    .header('Range', rangeHeader(state.size))
    .header('Docker-Upload-UUID', state.id);
  if (status === 202) reply.header('Content-Length', '0');
  return reply.send();
}

function digestParam(value: string | undefined): Digest {
  if (value === undefined || value === '') {
    throw new RegistryError('DIGEST_INVALID', 'the digest query parameter is required');
  }
  return Digest.parse(value);
}

/**
 * POST /v2/<name>/blobs/uploads/: starts a session; with `digest`, takes the
 * whole blob in this request; with `mount`, links a blob the registry holds.
 */
export const startUpload: Handler<StartParams> = async (ctx, { name }, request, reply) => {
  assertWritable(ctx);
  const mount = queryParam(request, 'mount');
  const digest = queryParam(request, 'digest');
  const signal = requestSignal(request);
  if (mount !== undefined) {
    const from = queryParam(request, 'from');
    if (from !== undefined) assertName(from);
    // Only from repositories the caller may pull; otherwise this is an ordinary upload (202).
    const mounted = await ctx.registry.blobs.mount(name, Digest.parse(mount), from, (repo) => ctx.access.mayPull(request, repo), ctx.origin(request));
    if (mounted) return blobCreated(ctx, reply, name, mounted.digest);
  } else if (digest !== undefined) {
    const result = await ctx.registry.uploads.monolithic(name, digestParam(digest), request.raw, contentLength(request), signal, ctx.origin(request));
    return blobCreated(ctx, reply, name, result.digest);
  }
  const state = await ctx.registry.uploads.start(name, signal);
  return uploadAccepted(ctx, reply, state, 202);
};

/** PATCH: appends a chunk, streamed (no Content-Range) or at an offset (Content-Range). */
export const patchUpload: Handler<UploadParams> = async (ctx, { name, id }, request, reply) => {
  assertWritable(ctx);
  const range = parseContentRange(request.headers['content-range'] as string | undefined);
  const state = await ctx.registry.uploads.append(
    name,
    id,
    request.raw,
    { range, length: contentLength(request) },
    requestSignal(request),
  );
  return uploadAccepted(ctx, reply, state, 202);
};

/** PUT ?digest=: completes the upload, with an optional last chunk in the body. */
export const completeUpload: Handler<UploadParams> = async (ctx, { name, id }, request, reply) => {
  assertWritable(ctx);
  const digest = digestParam(queryParam(request, 'digest'));
  const withBody = hasBody(request);
  const range = withBody ? parseContentRange(request.headers['content-range'] as string | undefined) : undefined;
  const result = await ctx.registry.uploads.complete(
    name,
    id,
    digest,
    withBody ? request.raw : undefined,
    { range, length: contentLength(request) },
    requestSignal(request),
    ctx.origin(request),
  );
  return blobCreated(ctx, reply, name, result.digest);
};

/** GET: where the upload stands. */
export const uploadStatus: Handler<UploadParams> = async (ctx, { name, id }, _request, reply) => {
  const state = await ctx.registry.uploads.status(name, id);
  return uploadAccepted(ctx, reply, state, 204);
};

/** DELETE: cancels the upload and drops its data. */
export const cancelUpload: Handler<UploadParams> = async (ctx, { name, id }, _request, reply) => {
  assertWritable(ctx);
  await ctx.registry.uploads.cancel(name, id);
  return reply.code(204).send();
};
