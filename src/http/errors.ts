import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RangeNotSatisfiableError, RegistryError, UploadRangeError, errorBody, type ErrorCode } from '../oci/errors.js';
import { StoreUnavailableError } from '../storage/blob-store.js';
import { rangeHeader, uploadPath } from './upload-routes.js';

const CLIENT_GONE = new Set(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR', 'EPIPE']);

/**
 * Whether an error means the client went away in the middle of sending its
 * body. A failure after the body arrived whole (a full disk, say) is the server's.
 */
export function isClientGone(err: unknown, request: FastifyRequest): boolean {
  if (request.raw.complete) return false;
  const code = (err as NodeJS.ErrnoException)?.code;
  return (code !== undefined && CLIENT_GONE.has(code)) || (err as Error)?.message === 'aborted';
}

export function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string, detail?: unknown): FastifyReply {
  return reply.code(status).type('application/json').send(errorBody(code, message, detail));
}

/** The one place that turns failures into the spec's error envelope. */
export function registerErrorHandling(app: FastifyInstance, publicUrl: string | undefined): void {
  app.setErrorHandler((err: FastifyError | RegistryError | Error, request, reply) => {
    if (err instanceof UploadRangeError) {
      reply
        .header('Location', (publicUrl ?? '') + uploadPath(err.repo, err.uuid))
        .header('Range', rangeHeader(err.size))
        .header('Docker-Upload-UUID', err.uuid);
    } else if (err instanceof RangeNotSatisfiableError) {
      reply.header('Content-Range', `bytes */${err.size}`);
    }
    if (err instanceof RegistryError) {
      if (err.status >= 500) request.log.error({ err }, 'request failed');
      return sendError(reply, err.status, err.code, err.message, err.detail);
    }
    if (err instanceof StoreUnavailableError) {
      // The backend's passing trouble: the client may try again (docker and others do on 429 and 503).
      request.log.warn({ err }, 'storage backend unavailable');
      reply.header('Retry-After', '5');
      return err.throttled
        ? sendError(reply, 429, 'TOOMANYREQUESTS', 'the storage backend is throttling requests; retry later')
        : sendError(reply, 503, 'UNAVAILABLE', 'the storage backend is unavailable; retry later');
    }
    if (isClientGone(err, request)) {
      request.log.info({ code: (err as NodeJS.ErrnoException).code }, 'client closed the connection mid-request');
      return sendError(reply, 400, 'BLOB_UPLOAD_INVALID', 'the request body ended early');
    }
    const status = (err as FastifyError).statusCode;
    if (status !== undefined && status >= 400 && status < 500) {
      // The framework's own client errors (a malformed URL, a bad header, ...).
      return sendError(reply, status, status === 413 ? 'SIZE_INVALID' : 'UNSUPPORTED', err.message);
    }
    request.log.error({ err }, 'request failed');
    return sendError(reply, 500, 'UNKNOWN', 'internal server error');
  });

  app.setNotFoundHandler((request, reply) => {
    sendError(reply, 404, 'UNSUPPORTED', `no such endpoint: ${request.method} ${request.url.split('?')[0]}`);
  });
}
