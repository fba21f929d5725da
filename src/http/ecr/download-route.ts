/**
 * GET and HEAD /ecr/download/<repo>/<digest>?token=...: the URL GetDownloadUrlForLayer gives
 * when the store has no URL of its own (the filesystem, or S3 without redirects). The token
 * (EcrCredentials.signDownload) is the whole authorisation: it names the repository, the
 * digest and an expiry, so the route needs no other credentials ("signed": verified here).
 * The blob is then served as /v2/ serves it, with Range.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { EcrCredentials } from '../../auth/ecr-credentials.js';
import type { Need } from '../../auth/types.js';
import { Digest } from '../../oci/digest.js';
import { RegistryError } from '../../oci/errors.js';
import { MediaType } from '../../oci/media-types.js';
import { isValidName } from '../../oci/names.js';
import type { Registry } from '../../registry/registry.js';
import { openBlobBody, sendBlobBody } from '../blob-body.js';
import { parseRange, queryParam } from '../request.js';

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
    size = (await deps.registry.blobs.stat(repo, digest)).size;
  } catch (err) {
    if (err instanceof RegistryError && err.code === 'BLOB_UNKNOWN') return refuse(reply, 404, 'LayersNotFound', 'The layer is no longer in the repository');
    throw err;
  }
  const range = parseRange(request.headers.range, size);
  if (range === null) {
    return reply.code(416).header('Content-Range', `bytes */${size}`).header('Content-Length', '0').send();
  }
  const length = range ? range.end - range.start + 1 : size;
  const body = request.method === 'GET' && length > 0 ? await openBlobBody(deps.registry, request, digest, range, size) : undefined;

  reply
    .type(MediaType.OctetStream)
    .header('Content-Length', String(length))
    .header('Docker-Content-Digest', digest.toString())
    .header('ETag', `"${digest}"`)
    .header('Accept-Ranges', 'bytes')
    .header('Cache-Control', 'private, no-store'); // the URL is a credential for a while: keep it out of shared caches
  if (range) reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${size}`);
  return sendBlobBody(request, reply, body, digest, range?.start ?? 0, length);
}

function refuse(reply: FastifyReply, status: number, code: string, message: string): FastifyReply {
  return reply.code(status).header('Cache-Control', 'no-store').type('application/json').send(JSON.stringify({ code, message }));
}
