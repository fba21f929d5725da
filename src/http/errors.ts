import { BlobDeletingError, IndexTextError, LockLostError, LockTimeoutError } from '../index/contract.js';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RangeNotSatisfiableError, RegistryError, UploadRangeError, errorBody, type ErrorCode } from '../oci/errors.js';
import { StoreUnavailableError, StorageFullError, toStorageFullError } from '../storage/blob-store.js';
import { rangeHeader, uploadPath } from './upload-routes.js';
import { ProxyUnavailableError } from '../proxy/cache.js';
import { UpstreamUnavailableError } from '../proxy/upstream.js';

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

/**
 * The StorageFullError a failure means: the store's own, an errno code of a
 * write that found no room, or SQLite's SQLITE_FULL from the index.
 */
function storageFull(err: unknown): StorageFullError | undefined {
  if ((err as { code?: unknown })?.code === 'SQLITE_FULL') {
    return new StorageFullError('the index database has no room left (SQLITE_FULL)', 'SQLITE_FULL', { cause: err });
  }
  return toStorageFullError(err);
}

const STORAGE_FULL_MESSAGE =
  'the registry cannot store this (its storage is full, over quota, read-only or refusing writes); nothing was stored';

/** Methods whose success means the storage took a write again. */
const WRITES = new Set(['POST', 'PUT', 'PATCH']);

export function sendError(reply: FastifyReply, status: number, code: ErrorCode, message: string, detail?: unknown): FastifyReply {
  return reply.code(status).type('application/json').send(errorBody(code, message, detail));
}

/** The one place that turns failures into the spec's error envelope. */
export function registerErrorHandling(app: FastifyInstance, publicUrl: string | undefined): void {
  // A full disk fails every write until room is made: the first failure of
  // an episode is logged as an error, the rest quietly, until a write succeeds.
  let storageFullSince: number | undefined;
  app.addHook('onResponse', (request, reply, done) => {
    if (storageFullSince !== undefined && reply.statusCode < 300 && WRITES.has(request.method)) {
      request.log.info({ durationMs: Date.now() - storageFullSince }, 'storage accepts writes again');
      storageFullSince = undefined;
    }
    done();
  });

  app.setErrorHandler((err: FastifyError | RegistryError | Error, request, reply) => {
    if (err instanceof UploadRangeError) {
      reply
        .header('Location', (publicUrl ?? '') + uploadPath(err.repo, err.uuid))
        .header('Range', rangeHeader(err.size))
        .header('Docker-Upload-UUID', err.uuid);
    } else if (err instanceof RangeNotSatisfiableError) {
      reply.header('Content-Range', `bytes */${err.size}`);
    }
    if (err instanceof UpstreamUnavailableError) {
      // A pull-through fetch that failed before the first byte of its answer (the cache logged it).
      reply.header('Retry-After', String(err.retryAfter ?? 30));
      return sendError(reply, 503, 'UNAVAILABLE', 'the upstream registry failed this fetch; retry later');
    }
    if (err instanceof ProxyUnavailableError) {
      // The cache has logged why (the upstream's failure): the client waits and tries again.
      reply.header('Retry-After', String(err.retryAfter));
      return sendError(reply, err.status, err.code, err.message);
    }
    if (err instanceof RegistryError) {
      if (err.status >= 500) request.log.error({ err }, 'request failed');
      return sendError(reply, err.status, err.code, err.message, err.detail);
    }
    if (err instanceof IndexTextError) return sendError(reply, 400, 'UNSUPPORTED', err.message);
    if (err instanceof LockTimeoutError || err instanceof LockLostError) {
      // Another request (on this node or another) has held the repository or upload all this while,
      // or this node lost its lock (its database connection broke) before it wrote.
      request.log.warn({ lock: err.lock, reason: err.name }, 'write not done: lock unavailable');
      reply.header('Retry-After', '5');
      return sendError(reply, 503, 'UNAVAILABLE', 'the repository is busy with another write; retry later');
    }
    if (err instanceof BlobDeletingError) {
      // The collector has been deleting this blob all the while the request waited for it.
      request.log.warn({ digest: err.digest }, 'write not done: the blob is being garbage collected');
      reply.header('Retry-After', '5');
      return sendError(reply, 503, 'UNAVAILABLE', 'the blob is being deleted by the garbage collector; retry later');
    }
    if (err instanceof StoreUnavailableError) {
      // The backend's passing trouble: the client may try again (docker and others do on 429 and 503).
      request.log.warn({ err }, 'storage backend unavailable');
      reply.header('Retry-After', '5');
      return err.throttled
        ? sendError(reply, 429, 'TOOMANYREQUESTS', 'the storage backend is throttling requests; retry later')
        : sendError(reply, 503, 'UNAVAILABLE', 'the storage backend is unavailable; retry later');
    }
    const full = storageFull(err);
    if (full) {
      if (storageFullSince === undefined) {
        storageFullSince = Date.now();
        request.log.error({ err: full, reason: full.reason }, 'storage full: writes fail until room is made');
      } else {
        request.log.debug({ reason: full.reason }, 'storage still full');
      }
      return sendError(reply, 507, 'INSUFFICIENT_STORAGE', STORAGE_FULL_MESSAGE);
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

/** The envelope's code and message for what Node refuses before a request reaches Fastify. */
const CLIENT_ERRORS: Record<string, { status: number; message: string }> = {
  HPE_HEADER_OVERFLOW: { status: 431, message: 'the request headers are too large' },
  ERR_HTTP_REQUEST_TIMEOUT: { status: 408, message: 'the request headers took too long to arrive' },
};

/**
 * Answers a request that Node's parser refused (a head too large, too slow,
 * malformed) in the envelope, and closes the connection: Fastify's
 * clientErrorHandler.
 */
export function writeClientError(err: Error & { code?: string }, socket: Socket): void {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const { status, message } = CLIENT_ERRORS[err.code ?? ''] ?? { status: 400, message: 'malformed request' };
  if (socket.writable) {
    const body = errorBody('UNSUPPORTED', message);
    const head = `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json\r\n`;
    socket.write(`${head}Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy(err);
}
