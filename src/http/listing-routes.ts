import type { FastifyReply } from 'fastify';
import { Digest } from '../oci/digest.js';
import { MediaType } from '../oci/media-types.js';
import type { Referrer } from '../registry/manifests.js';
import type { Handler, RouteContext } from './context.js';
import { afterKey, pagination, queryParam } from './request.js';

/** With no `n`, a listing returns everything. */
const UNLIMITED = Number.MAX_SAFE_INTEGER;

/**
 * Sends one page of a sorted listing. One more entry than asked for is read, to
 * know whether a `Link` to the next page is due.
 */
async function sendPage(
  ctx: RouteContext,
  reply: FastifyReply,
  path: string,
  n: number | undefined,
  fetch: (limit: number) => string[] | Promise<string[]>,
  body: (items: string[]) => unknown,
): Promise<FastifyReply> {
  if (n === 0) return reply.send(body([]));
  const items = await fetch(n === undefined ? UNLIMITED : n + 1);
  if (n !== undefined && items.length > n) {
    items.length = n;
    const next = `${path}?n=${n}&last=${encodeURIComponent(items[n - 1]!)}`;
    reply.header('Link', `<${ctx.url(next)}>; rel="next"`);
  }
  return reply.send(body(items));
}

/** GET /v2/<name>/tags/list */
export const listTags: Handler<{ name: string }> = async (ctx, { name }, request, reply) => {
  const { n, last } = pagination(request);
  const list = await ctx.registry.manifests.tags(name); // NAME_UNKNOWN for an unknown repository, whatever n is
  if (n === undefined && last === '') return reply.type('application/json; charset=utf-8').send(list.json());
  return sendPage(ctx, reply, `/v2/${name}/tags/list`, n, (limit) => list.after(last, limit), (tags) => ({ name, tags }));
};

/** GET /v2/_catalog */
export const catalog: Handler<Record<string, never>> = async (ctx, _params, request, reply) => {
  const { n, last } = pagination(request);
  const visible = ctx.access.visible(request);
  const body = (repositories: string[]) => ({ repositories });
  if (!visible) return sendPage(ctx, reply, '/v2/_catalog', n, (limit) => ctx.registry.manifests.catalog(last, limit), body);
  if (n === 0) return reply.send(body([]));
  // Filtered: a page reads a bounded part of the index; when that runs out before n names were
  // found, the page is shorter and its Link continues after the last name read.
  const page = await ctx.registry.manifests.visibleCatalog(last, n === undefined ? UNLIMITED : n + 1, visible, n === undefined ? Infinity : undefined);
  let next: string | undefined;
  if (n !== undefined && page.names.length > n) {
    page.names.length = n;
    next = page.names[n - 1];
  } else if (page.scannedTo !== undefined) {
    next = page.scannedTo;
  }
  if (next !== undefined) reply.header('Link', `<${ctx.url(`/v2/_catalog?n=${n}&last=${encodeURIComponent(next)}`)}>; rel="next"`);
  return reply.send(body(page.names));
};

/** The size a referrers page stays under: the spec's 4 MiB manifest limit. */
const REFERRERS_PAGE_BYTES = 4 * 1024 * 1024 - 4096;

/** GET /v2/<name>/referrers/<digest>[?artifactType=] */
export const listReferrers: Handler<{ name: string; digest: string }> = async (ctx, { name, digest }, request, reply) => {
  const subject = Digest.parse(digest);
  const artifactType = queryParam(request, 'artifactType');
  const all = await ctx.registry.manifests.referrers(name, subject, artifactType || undefined, afterKey(queryParam(request, 'last') ?? ''));

  const page: Referrer[] = [];
  let bytes = 100;
  for (const r of all) {
    const size = Buffer.byteLength(JSON.stringify(r)) + 1;
    if (page.length > 0 && bytes + size > REFERRERS_PAGE_BYTES) {
      const next = `/v2/${name}/referrers/${subject}?${artifactType ? `artifactType=${encodeURIComponent(artifactType)}&` : ''}last=${page[page.length - 1]!.digest}`;
      reply.header('Link', `<${ctx.url(next)}>; rel="next"`);
      break;
    }
    page.push(r);
    bytes += size;
  }
  if (artifactType) reply.header('OCI-Filters-Applied', 'artifactType');
  // A Buffer, so that the media type goes out exactly as the spec writes it (no charset).
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: page }));
  return reply.type(MediaType.OciIndex).send(body);
};
