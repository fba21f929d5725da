/**
 * Image archives over HTTP, under /api/v1/:
 * - POST /api/v1/import: `multipart/form-data` with a `file` part (a docker save or OCI layout tar,
 *   gzip-compressed or not) and optional `repository` and `tag` fields, in any order; or the tar
 *   itself as the body (`application/x-tar`, `application/gzip`), with `?repository=&tag=`.
 *   The archive is streamed into staging, checked whole, then committed (src/archive/).
 * - GET /api/v1/export/<name>:<tag> or <name>@<digest>, `?format=docker|oci[&platform=os/arch]`:
 *   a streamed tar for `docker load` or `skopeo copy docker-archive:`/`oci-archive:`.
 * The import needs a signed-in caller, then push on every repository it writes (the guard
 * decides: src/auth/); the export needs pull on its repository. Both are session routes, so
 * the web UI's cookie is a credential here (with its CSRF check on the import).
 */
import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { PassThrough } from 'node:stream';
import type { Need } from '../../auth/types.js';
import { ArchiveImporter, pushDenied } from '../../archive/importer.js';
import { planExport, writeExport, type ExportFormat, type ExportPlan } from '../../archive/exporter.js';
import type { ArchiveContents } from '../../archive/reader.js';
import { Digest } from '../../oci/digest.js';
import { RegistryError } from '../../oci/errors.js';
import { isValidName, isValidTag } from '../../oci/names.js';
import type { Reference } from '../../registry/manifests.js';
import { assertWritable, registryHost, requestSignal, type RouteContext } from '../context.js';
import { noteRequest } from '../observe.js';
import { baseMediaType } from '../../oci/media-types.js';
import { queryParam } from '../request.js';

/** A form field is a name or a tag: a few hundred bytes at most. */
const FIELD_BYTES = 1024;
/** The form's shape, as the multipart parser's refusals say it was exceeded. */
const FORM_LIMITS: Record<string, string> = {
  FST_FILES_LIMIT: 'send one archive per request',
  FST_FIELDS_LIMIT: 'the form takes two fields at most (repository and tag)',
  FST_PARTS_LIMIT: 'the form takes three parts at most (file, repository and tag)',
};
/** Bodies taken as the tar itself, without a form. */
const TAR_TYPES = new Set(['application/x-tar', 'application/tar', 'application/gzip', 'application/x-gzip', 'application/octet-stream']);

export interface ArchiveRouteOptions {
  ctx: RouteContext;
}

export async function archiveRoutes(app: FastifyInstance, { ctx }: ArchiveRouteOptions): Promise<void> {
  const { maxBytes } = ctx.config.archives;
  const importer = new ArchiveImporter(ctx.registry, ctx.config.archives, ctx.config.limits.manifestMaxBytes);
  // One file and two fields; the file's size is bounded by the reader (archives.maxsize), which names the key.
  await app.register(multipart, {
    limits: { fieldNameSize: 100, fieldSize: FIELD_BYTES, fields: 2, fileSize: maxBytes + 1, files: 1, parts: 3, headerPairs: 20 },
  });

  app.post(
    '/api/v1/import',
    { config: { need: { kind: 'authenticated' }, session: true, audit: 'archive.import' } },
    async (request, reply) => {
      assertWritable(ctx);
      const signal = requestSignal(request);
      const fields: { repository?: string; tag?: string } = {};
      const take = (name: string, value: unknown) => {
        if (typeof value !== 'string') throw formError(`the ${name} field must be text`);
        const v = value.trim();
        if (v === '') return;
        if (name === 'repository') {
          if (!isValidName(v)) throw new RegistryError('NAME_INVALID', `invalid repository name ${JSON.stringify(v.slice(0, 300))}`, { detail: { name: v.slice(0, 300) } });
          // Refused before a byte of the archive is staged.
          if (!ctx.access.mayPush(request, v)) throw pushDenied(v);
          fields.repository = v;
        } else if (name === 'tag') {
          if (!isValidTag(v)) throw new RegistryError('MANIFEST_INVALID', `invalid tag ${JSON.stringify(v.slice(0, 200))}`, { detail: { tag: v.slice(0, 200) } });
          fields.tag = v;
        } else {
          throw formError(`unknown field ${JSON.stringify(name.slice(0, 100))}: the form takes file, repository and tag`);
        }
      };
      let staged: ArchiveContents;
      try {
        staged = await receive(request, importer, take, signal);
      } catch (err) {
        // Refused before the whole body arrived: the connection closes, rather than reading the rest to throw it away.
        if (!request.raw.complete) reply.header('Connection', 'close');
        throw err;
      }
      // The commit discards whatever it does not keep, whatever happens.
      const imported = await importer.commit(staged, {
        repository: fields.repository,
        tag: fields.tag,
        mayPush: (repo) => ctx.access.mayPush(request, repo),
        origin: ctx.origin(request),
        signal,
      });
      const repositories = [...new Set(imported.map((i) => i.repository))];
      if (repositories.length === 1) noteRequest(request, { repository: repositories[0]! });
      request.server.metrics?.archive('import', new Set(imported.map((i) => `${i.repository}@${i.digest}`)).size, staged.sent.bytes);
      request.log.info({ images: imported.length, repositories, bytes: staged.sent.bytes }, 'archive imported');
      return reply.code(201).send({ imported });
    },
  );

  app.route({
    method: ['GET', 'HEAD'],
    url: '/api/v1/export/*',
    config: { need: exportNeed, session: true },
    handler: (request, reply) => exportImage(ctx, request, reply),
  });
}

/** GET or HEAD of an export: everything looked up, then the tar streamed. */
async function exportImage(ctx: RouteContext, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const target = parseExportTarget(request);
  if (!target) throw new RegistryError('NAME_INVALID', 'export what? /api/v1/export/<name>:<tag> or /api/v1/export/<name>@<digest>', { status: 400 });
  const format = queryParam(request, 'format') ?? 'docker';
  if (format !== 'docker' && format !== 'oci') throw new RegistryError('UNSUPPORTED', 'format must be docker or oci', { status: 400, detail: { format } });
  const platform = queryParam(request, 'platform');
  if (platform !== undefined && !/^[a-z0-9._-]+\/[a-z0-9._-]+(\/[a-z0-9._-]+)?$/i.test(platform)) {
    throw new RegistryError('UNSUPPORTED', 'platform must be os/arch or os/arch/variant', { status: 400, detail: { platform } });
  }
  const { name, ref } = target;
  const plan = await planExport(ctx.registry, name, ref, format as ExportFormat, platform, registryHost(ctx, request));
  // A HEAD learns the headers (the length, the digest); it is no pull.
  if (request.method === 'HEAD') return headers(reply, plan).send();
  ctx.registry.pulls.record(name, plan.manifest.digest);
  ctx.registry.pulled(
    { kind: 'manifest', repository: name, digest: plan.manifest.digest, mediaType: plan.manifest.mediaType, size: plan.manifest.content.length, ...('tag' in ref ? { tag: ref.tag } : {}) },
    ctx.origin(request),
  );
  return stream(ctx, request, reply, plan);
}

/**
 * Reads the request's archive into staging: the form's file part (its fields handed to `take` as
 * they come, before or after it), or the whole body when it is the tar itself.
 */
async function receive(
  request: FastifyRequest,
  importer: ArchiveImporter,
  take: (name: string, value: unknown) => void,
  signal: AbortSignal,
): Promise<ArchiveContents> {
  let contents: ArchiveContents | undefined;
  try {
    if (request.isMultipart()) {
      for await (const part of request.parts()) {
        if (part.type === 'field') {
          if (part.valueTruncated) throw formError(`the ${part.fieldname.slice(0, 100)} field is longer than ${FIELD_BYTES} bytes`);
          take(part.fieldname, part.value);
          continue;
        }
        if (part.fieldname !== 'file') throw formError(`the archive goes in a part named file, not ${JSON.stringify(part.fieldname.slice(0, 100))}`);
        if (contents) throw formError('send one archive per request');
        contents = await importer.read(part.file, signal);
      }
    } else if (TAR_TYPES.has(baseMediaType(request.headers['content-type']))) {
      for (const name of ['repository', 'tag']) {
        const value = queryParam(request, name);
        if (value !== undefined) take(name, value);
      }
      contents = await importer.read(request.raw, signal);
    } else {
      throw new RegistryError('UNSUPPORTED', 'send the archive as multipart/form-data (a part named file), or as the body with Content-Type application/x-tar', {
        status: 415,
      });
    }
    if (!contents) throw formError('the form has no part named file holding the archive');
    return contents;
  } catch (err) {
    if (contents) await importer.discard(contents);
    throw formProblem(err);
  }
}

/** Sends the planned tar; a failure once bytes are out cuts the response short (the client sees it failed). */
function stream(ctx: RouteContext, request: FastifyRequest, reply: FastifyReply, plan: ExportPlan): FastifyReply {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableEnded) controller.abort();
  });
  const body = new PassThrough({ highWaterMark: 1024 * 1024 });
  writeExport(ctx.registry, plan, body, controller.signal).then(
    () => request.server.metrics?.archive('export', 1, plan.length ?? 0),
    (err: unknown) => {
      if (!controller.signal.aborted) request.log.warn({ err }, 'archive export failed mid-way');
      body.destroy(err as Error);
    },
  );
  return headers(reply, plan).send(body);
}

function headers(reply: FastifyReply, plan: ExportPlan): FastifyReply {
  reply
    .header('Content-Type', 'application/x-tar')
    .header('Content-Disposition', `attachment; filename="${plan.filename}"`)
    .header('Docker-Content-Digest', plan.manifest.digest);
  if (plan.length !== undefined) reply.header('Content-Length', String(plan.length));
  return reply;
}

/** Pull on the repository named in the URL; a URL that names none needs a signed-in caller, then gets a 400. */
function exportNeed(request: FastifyRequest): Need {
  const target = parseExportTarget(request);
  return target ? { kind: 'repository', name: target.name, actions: ['pull'] } : { kind: 'authenticated' };
}

/** `<name>:<tag>`, `<name>@<digest>` or `<name>` (its latest tag). */
function parseExportTarget(request: FastifyRequest): { name: string; ref: Reference } | undefined {
  const path = (request.params as { '*': string })['*'] ?? '';
  const at = path.indexOf('@');
  if (at >= 0) {
    const digest = Digest.tryParse(path.slice(at + 1));
    const name = path.slice(0, at);
    return digest && isValidName(name) ? { name, ref: { digest } } : undefined;
  }
  const colon = path.lastIndexOf(':');
  const name = colon > path.lastIndexOf('/') ? path.slice(0, colon) : path;
  const tag = colon > path.lastIndexOf('/') ? path.slice(colon + 1) : 'latest';
  return isValidName(name) && isValidTag(tag) ? { name, ref: { tag } } : undefined;
}

function formError(message: string): RegistryError {
  return new RegistryError('BLOB_UPLOAD_INVALID', `invalid form: ${message}`);
}

/** The multipart parser's refusals (too many parts, a field too long, a broken body) as 4xx answers. */
function formProblem(err: unknown): unknown {
  if (err instanceof RegistryError) return err;
  const e = err as { code?: string; statusCode?: number; message?: string };
  const limit = e.code !== undefined ? FORM_LIMITS[e.code] : undefined;
  if (limit) return formError(limit);
  if (typeof e.code === 'string' && e.code.startsWith('FST_') && e.statusCode !== undefined && e.statusCode < 500) {
    return new RegistryError(e.statusCode === 413 ? 'SIZE_INVALID' : 'BLOB_UPLOAD_INVALID', `invalid form: ${e.message ?? e.code}`, { status: e.statusCode });
  }
  if (/Unexpected end of form|Malformed part header|Unexpected end of multipart data/i.test(e.message ?? '')) {
    return new RegistryError('BLOB_UPLOAD_INVALID', `invalid form: ${e.message}`);
  }
  return err;
}
