/**
 * The JSON API behind the web UI, under /ui/api/: signing in and out, and what the pages show
 * (repositories, tags, an image, usage) and do (delete). Every route declares its right and is a
 * session route: the UI's cookie is a credential here (checked, with CSRF, by the guard). What
 * it reads comes from the same use cases as /v2/ and the ECR API.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Auth } from '../../auth/setup.js';
import { SESSION_COOKIE } from '../../auth/ui-sessions.js';
import type { Need } from '../../auth/types.js';
import { EcrImages } from '../../ecr/images.js';
import { Digest } from '../../oci/digest.js';
import { RegistryError } from '../../oci/errors.js';
import { summarizeConfig } from '../../oci/image-config.js';
import { parseManifest } from '../../oci/manifest.js';
import { INDEX_MEDIA_TYPES } from '../../oci/media-types.js';
import { isValidName, isValidTag } from '../../oci/names.js';
import { assertDeletable, registryHost, type RouteContext } from '../context.js';
import { queryParam, readBody } from '../request.js';

/** A config larger than this is not read for the image page (configs are a few KiB). */
const CONFIG_LIMIT = 1024 * 1024;
const PAGE = 50;
/** The config media types of plain images: no artifact type worth showing. */
const IMAGE_CONFIGS = new Set(['application/vnd.oci.image.config.v1+json', 'application/vnd.docker.container.image.v1+json']);
const artifactTypeOf = (t: string | undefined) => (t === undefined || IMAGE_CONFIGS.has(t) ? null : t);
const MAX_PAGE = 500;

export interface UiApiOptions {
  ctx: RouteContext;
  auth: Auth | undefined;
}

export async function uiApiRoutes(app: FastifyInstance, { ctx, auth }: UiApiOptions): Promise<void> {
  const images = new EcrImages(ctx.registry, ctx.registry.database.images);
  const secure = ctx.config.http.tls !== undefined || ctx.config.http.publicUrl?.startsWith('https:') === true;
  const session = true;

  app.get('/ui/api/session', { config: { need: { kind: 'public' }, session } }, async (request) => ({
    auth: auth !== undefined,
    signIn: auth?.sessions !== undefined,
    user: request.uiSession?.user ?? null,
    csrf: request.uiSession?.csrf ?? null,
    expiresAt: request.uiSession?.expiresAt ?? null,
  }));

  app.post('/ui/api/login', { config: { need: { kind: 'public' }, session, audit: 'ui.login' } }, async (request, reply) => {
    if (!auth?.sessions) return uiError(reply, 404, 'sign-in is not available: this registry has no htpasswd users');
    const body = await readJson(request);
    const user = typeof body.username === 'string' ? body.username : '';
    const password = typeof body.password === 'string' ? body.password : '';
    if (user === '' || password === '' || user.includes(':')) return uiError(reply, 400, 'give a user name and a password');
    const header = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    const result = await auth.authenticator.authenticate(header, request.ip);
    if (!result.ok) {
      request.server.metrics?.authFailure(result.reason);
      request.log.info({ audit: { action: 'login.failure', via: 'ui', user: user.slice(0, 100), addr: request.ip, reason: result.reason } }, 'UI sign-in refused');
      if (result.reason === 'throttled' || result.reason === 'busy') {
        reply.header('Retry-After', String(result.retryAfterSeconds));
        return uiError(reply, result.reason === 'busy' ? 503 : 429, 'too many failed sign-ins; retry later');
      }
      return uiError(reply, 401, 'wrong user name or password');
    }
    if (result.identity.kind !== 'user' || result.identity.via !== 'password') return uiError(reply, 401, 'sign in with a user name and its password');
    const { token, session: issued } = await auth.sessions.issue(result.identity.name);
    request.identity = result.identity;
    reply.header('Set-Cookie', cookie(token, Math.floor(auth.sessions.lifetimeMs / 1000), secure));
    return { user: issued.user, csrf: issued.csrf, expiresAt: issued.expiresAt };
  });

  app.post('/ui/api/logout', { config: { need: { kind: 'public' }, session } }, async (_request, reply) => {
    reply.header('Set-Cookie', cookie('', 0, secure));
    return reply.code(204).send();
  });

  app.get('/ui/api/repositories', { config: { need: { kind: 'catalog' }, session } }, async (request) => {
    const query = (queryParam(request, 'q') ?? '').trim().toLowerCase().slice(0, 256);
    const n = pageSize(request);
    const last = queryParam(request, 'last') ?? '';
    const visible = ctx.access.visible(request);
    const shows = (repo: string) => (query === '' || repo.includes(query)) && (visible?.(repo) ?? true);
    const page = await ctx.registry.manifests.visibleCatalog(last, n + 1, shows);
    const names = page.names.slice(0, n);
    const next = page.names.length > n ? names[names.length - 1] : page.scannedTo;
    return { repositories: names.map((name) => ({ name })), ...(next !== undefined ? { next } : {}) };
  });

  app.get('/ui/api/usage', { config: { need: { kind: 'catalog' }, session } }, async (request) => {
    const visible = ctx.access.visible(request);
    const rows = await ctx.registry.database.gc.usage();
    return {
      repositories: rows
        .filter((r) => visible?.(r.repository) ?? true)
        .map((r) => ({ name: r.repository, manifests: r.manifests, blobs: r.blobs, bytes: r.bytes, uniqueBytes: r.uniqueBytes, sharedBytes: r.sharedBytes })),
    };
  });

  app.route({
    method: ['GET', 'DELETE'],
    url: '/ui/api/repository/*',
    config: { need: repositoryNeed, session },
    handler: async (request, reply) => {
      const target = parseTarget(request);
      if (!target) throw new RegistryError('NAME_INVALID', 'no such page of the UI API', { status: 404 });
      const { name } = target;
      if (target.kind === 'tags' && request.method === 'GET') {
        const n = pageSize(request);
        const list = await ctx.registry.manifests.tags(name);
        const tags = list.after(queryParam(request, 'last') ?? '', n + 1);
        const shown = tags.slice(0, n);
        const digests = new Map<string, string>();
        for (const tag of shown) {
          const digest = await images.tagDigest(name, tag);
          if (digest !== undefined) digests.set(tag, digest);
        }
        const details = await images.describe(name, [...new Set(digests.values())]);
        return {
          repository: name,
          pull: `${registryHost(ctx, request)}/${name}`,
          tags: shown.flatMap((tag) => {
            const detail = details.get(digests.get(tag) ?? '');
            if (!detail) return [];
            return [{ tag, digest: detail.digest, mediaType: detail.manifestMediaType, artifactType: artifactTypeOf(detail.artifactMediaType), size: detail.sizeInBytes, pushedAt: detail.pushedAt }];
          }),
          ...(tags.length > n ? { next: shown[shown.length - 1] } : {}),
        };
      }
      if (target.kind === 'manifest' && request.method === 'GET') return imagePage(ctx, images, request, name, target.digest);
      if (request.method === 'DELETE' && (target.kind === 'tag' || target.kind === 'manifest')) {
        assertDeletable(ctx);
        await ctx.registry.manifests.delete(name, target.kind === 'tag' ? { tag: target.tag } : { digest: target.digest }, ctx.origin(request));
        return reply.code(204).send();
      }
      reply.header('Allow', target.kind === 'tags' ? 'GET' : target.kind === 'tag' ? 'DELETE' : 'GET, DELETE');
      throw new RegistryError('UNSUPPORTED', `${request.method} is not supported here`, { status: 405 });
    },
  });
}

type Target =
  | { kind: 'tags'; name: string }
  | { kind: 'tag'; name: string; tag: string }
  | { kind: 'manifest'; name: string; digest: Digest };

/** `<name>/tags`, `<name>/tag/<tag>` or `<name>/manifest/<digest>` after /ui/api/repository/. */
function parseTarget(request: FastifyRequest): Target | undefined {
  const path = (request.params as { '*': string })['*'];
  let m = /^(.+)\/tags$/.exec(path);
  if (m && isValidName(m[1]!)) return { kind: 'tags', name: m[1]! };
  m = /^(.+)\/tag\/([^/]+)$/.exec(path);
  if (m && isValidName(m[1]!) && isValidTag(m[2]!)) return { kind: 'tag', name: m[1]!, tag: m[2]! };
  m = /^(.+)\/manifest\/([^/]+)$/.exec(path);
  const digest = m ? Digest.tryParse(m[2]!) : null;
  if (m && digest && isValidName(m[1]!)) return { kind: 'manifest', name: m[1]!, digest };
  return undefined;
}

function repositoryNeed(request: FastifyRequest): Need {
  const target = parseTarget(request);
  if (!target) return { kind: 'authenticated' };
  return { kind: 'repository', name: target.name, actions: request.method === 'DELETE' ? ['delete'] : ['pull'] };
}

/** An image, an index or an artifact: what its page shows. */
async function imagePage(ctx: RouteContext, images: EcrImages, request: FastifyRequest, name: string, digest: Digest) {
  const row = await images.manifest(name, digest.toString());
  if (!row) throw new RegistryError('MANIFEST_UNKNOWN', `no manifest ${digest.toString()} in ${name}`, { status: 404 });
  const manifest = parseManifest(row.content, row.mediaType);
  const [tags, detail, referrers, parents] = await Promise.all([
    images.tagsOf(name, row.digest),
    images.describe(name, [row.digest]).then((m) => m.get(row.digest)),
    images.referrers(name, row.digest, '', 100),
    images.parentsOf(name, row.digest),
  ]);
  let config: ReturnType<typeof summarizeConfig>;
  if (manifest.config && manifest.config.size <= CONFIG_LIMIT) config = await readConfig(ctx, name, manifest.config.digest, request);
  const children = INDEX_MEDIA_TYPES.has(row.mediaType)
    ? manifest.manifests.map((d) => ({
        digest: d.digest.toString(),
        mediaType: d.mediaType,
        size: d.size,
        platform: d.platform ? [d.platform.os, d.platform.architecture, d.platform.variant].filter(Boolean).join('/') : null,
        artifactType: d.artifactType ?? null,
      }))
    : [];
  return {
    repository: name,
    digest: row.digest,
    mediaType: row.mediaType,
    kind: manifest.kind,
    artifactType: artifactTypeOf(detail?.artifactMediaType),
    size: detail?.sizeInBytes ?? 0,
    manifestSize: row.size,
    pushedAt: row.createdAt,
    tags,
    parents,
    subject: manifest.subject?.digest.toString() ?? null,
    annotations: manifest.annotations ?? {},
    pull: `${registryHost(ctx, request)}/${name}@${row.digest}`,
    config: config ?? null,
    configDigest: manifest.config?.digest.toString() ?? null,
    layers: manifest.layers.map((l) => ({ digest: l.digest.toString(), mediaType: l.mediaType, size: l.size })),
    children,
    referrers: referrers.items.map((r) => ({ digest: r.digest, mediaType: r.mediaType, size: r.size, artifactType: r.artifactType ?? null, annotations: r.annotations ?? {} })),
  };
}

async function readConfig(ctx: RouteContext, name: string, digest: Digest, request: FastifyRequest) {
  try {
    const body = await ctx.registry.blobs.readSmall(name, digest, CONFIG_LIMIT);
    return body && summarizeConfig(body);
  } catch (err) {
    request.log.info({ digest: digest.toString(), reason: (err as Error).message }, 'UI: image config not readable');
    return undefined;
  }
}

function pageSize(request: FastifyRequest): number {
  const raw = queryParam(request, 'n');
  if (raw === undefined || raw === '') return PAGE;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1) throw new RegistryError('UNSUPPORTED', 'n must be a positive integer', { status: 400 });
  return Math.min(n, MAX_PAGE);
}

async function readJson(request: FastifyRequest): Promise<Record<string, unknown>> {
  const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim();
  if (type !== 'application/json') throw new RegistryError('UNSUPPORTED', 'send application/json', { status: 415 });
  const body = await readBody(request, 16 * 1024, () => new RegistryError('UNSUPPORTED', 'the body is too large', { status: 413 }));
  try {
    const parsed: unknown = JSON.parse(body.toString('utf8'));
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) return parsed as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new RegistryError('UNSUPPORTED', 'the body must be a JSON object', { status: 400 });
}

function cookie(value: string, maxAge: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure ? '; Secure' : ''}`;
}

function uiError(reply: FastifyReply, status: number, message: string): FastifyReply {
  const code = status === 401 ? 'UNAUTHORIZED' : status === 429 ? 'TOOMANYREQUESTS' : status === 503 ? 'UNAVAILABLE' : 'UNSUPPORTED';
  return reply.code(status).send({ errors: [{ code, message }] });
}
