import { RegistryError } from '../oci/errors.js';
import { assertTag } from '../oci/names.js';
import { parseReference } from '../registry/manifests.js';
import { assertDeletable, assertWritable, type Handler } from './context.js';
import { queryParams, readBody } from './request.js';

type ManifestParams = { name: string; reference: string };

/** GET and HEAD /v2/<name>/manifests/<reference>: the stored bytes, as pushed. */
export const getManifest: Handler<ManifestParams> = async (ctx, { name, reference }, request, reply) => {
  // A repository served from an upstream: the pull-through cache answers, from what it holds or fetches.
  const route = ctx.proxy?.active ? await ctx.proxy.route(name) : undefined;
  const manifest = route
    ? await ctx.proxy!.manifest(name, parseReference(reference), request.headers.accept, route, request.log)
    : await ctx.registry.manifests.get(name, parseReference(reference), request.headers.accept);
  // A GET is a pull (ECR's lastRecordedPullTime; batched, no write here); a HEAD only looks.
  if (request.method === 'GET') {
    ctx.registry.pulls.record(name, manifest.digest);
    const ref = parseReference(reference);
    ctx.registry.pulled(
      { kind: 'manifest', repository: name, digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.content.length, ...('tag' in ref ? { tag: ref.tag } : {}) },
      ctx.origin(request),
    );
  }
  const etag = `"${manifest.digest}"`;
  reply
    .header('Content-Type', manifest.mediaType)
    .header('Docker-Content-Digest', manifest.digest)
    .header('ETag', etag)
    .header('Content-Length', String(manifest.content.length));
  if (request.headers['if-none-match'] === etag) return reply.code(304).send();
  return reply.send(request.method === 'HEAD' ? undefined : manifest.content);
};

/** PUT /v2/<name>/manifests/<reference>[?tag=...]: validates and stores a manifest. */
export const putManifest: Handler<ManifestParams> = async (ctx, { name, reference }, request, reply) => {
  assertWritable(ctx);
  const ref = parseReference(reference);
  if ('tag' in ref) assertTag(ref.tag);
  const extraTags = queryParams(request, 'tag').map(assertTag);
  const limit = ctx.config.limits.manifestMaxBytes;
  const body = await readBody(
    request,
    limit,
    () => new RegistryError('MANIFEST_INVALID', `manifest exceeds the ${limit}-byte limit`, { status: 413, detail: { limit } }),
  );
  const result = await ctx.registry.manifests.put(name, ref, body, request.headers['content-type'], extraTags, ctx.origin(request));
  reply
    .code(201)
    .header('Location', ctx.url(`/v2/${name}/manifests/${result.digest}`))
    .header('Docker-Content-Digest', result.digest.toString())
    .header('Content-Length', '0');
  if (result.subject) reply.header('OCI-Subject', result.subject.toString());
  return reply.send();
};

/** DELETE: by digest removes the manifest and its tags; by tag, only the tag. */
export const deleteManifest: Handler<ManifestParams> = async (ctx, { name, reference }, request, reply) => {
  assertDeletable(ctx);
  await ctx.registry.manifests.delete(name, parseReference(reference), ctx.origin(request));
  return reply.code(202).header('Content-Length', '0').send();
};
