/**
 * GET and HEAD /ecr/download/<repo>/<digest>?token=...: the URL GetDownloadUrlForLayer gives
 * when the store has no URL of its own (the filesystem, or S3 without redirects). The token
 * (EcrCredentials.signDownload) is the whole authorisation: it names the repository, the
 * digest and an expiry, so the route needs no other credentials ("signed": verified here).
 * The blob is then served as /v2/ serves it, with Range.
 */
import type { OutgoingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EcrCredentials } from '../../auth/ecr-credentials.js';
import type { Need } from '../../auth/types.js';
import { Digest } from '../../oci/digest.js';
import { RegistryError } from '../../oci/errors.js';
import { MediaType } from '../../oci/media-types.js';
import { isValidName } from '../../oci/names.js';
import type { Registry } from '../../registry/registry.js';
import { requestSignal } from '../context.js';
import { parseRange, queryParam } from '../request.js';
import { sendObject } from '../send-object.js';

export interface DownloadDeps {
  readonly registry: Registry;
  readonly credentials: EcrCredentials;
}

/** Verified by this route itself (the token), not by the auth hook. */
const SIGNED: Need = { kind: 'signed' };

export async function ecrDownloadRoutes(app: FastifyInstance, deps: DownloadDeps): Promise<void> {
  app.route({
    method: ['GET', 'HEAD'],
    url: '/ecr/download/*',
    config: { need: SIGNED },
    handler: (request, reply) => download(deps, request, reply),
  });
}

async function download(deps: DownloadDeps, request: FastifyRequest, reply: FastifyReply): Promise<unknown> {
  const path = (request.params as { '*': string })['*'];
  const slash = path.lastIndexOf('/');
  const repo = path.slice(0, Math.max(slash, 0));
  const digest = Digest.tryParse(path.slice(slash + 1));
  const token = queryParam(request, 'token');
  if (slash <= 0 || !isValidName(repo) || !digest || !token || !deps.credentials.verifyDownload(token, repo, digest.toString())) {
    return refuse(reply, 403, 'AccessDenied', 'The download URL is invalid or has expired; ask GetDownloadUrlForLayer for a new one');
  }

  let size: number;
  try {
    size = deps.registry.blobs.stat(repo, digest).size;
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'BLOB_UNKNOWN') return refuse(reply, 404, 'LayersNotFound', 'The layer is no longer in the repository');
    throw err;
  }
  const range = parseRange(request.headers.range, size);
  if (range === null) {
    return reply.code(416).header('Content-Range', `bytes */${size}`).header('Content-Length', '0').send();
  }
  const length = range ? range.end - range.start + 1 : size;
  // Opened before any header is set: content missing from the store answers a plain error.
  const body = request.method === 'GET' && length > 0 ? await deps.registry.blobs.open(digest, range, requestSignal(request)) : undefined;
  if (body && 'handle' in body && body.handle.size !== size) {
    await body.handle.close();
    throw new Error(`blob ${digest} is ${body.handle.size} bytes in the store but ${size} in the index`);
  }

  reply
    .type(MediaType.OctetStream)
    .header('Content-Length', String(length))
    .header('Docker-Content-Digest', digest.toString())
    .header('ETag', `"${digest}"`)
    .header('Accept-Ranges', 'bytes')
    .header('Cache-Control', 'private, no-store'); // the URL is a credential for a while: keep it out of shared caches
  if (range) reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  if (!body || 'stream' in body) return reply.send(body?.stream);

  const { handle } = body;
  reply.hijack();
  try {
    reply.raw.writeHead(reply.statusCode, reply.getHeaders() as OutgoingHttpHeaders);
    await sendObject(handle, range?.start ?? 0, length, reply.raw);
  } catch (err) {
    if (!reply.raw.destroyed) reply.raw.destroy();
    request.log.info({ digest: digest.toString(), reason: (err as Error).message }, 'layer download cut short');
  } finally {
    await handle.close();
  }
  return reply;
}

function refuse(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).header('Cache-Control', 'no-store').type('application/json').send(JSON.stringify({ code, message }));
}
